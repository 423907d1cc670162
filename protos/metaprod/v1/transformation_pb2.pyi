import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metaprod.v1 import catalog_pb2 as _catalog_pb2
from metaprod.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransformationRef(_message.Message):
    __slots__ = ("production", "name")
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    production: str
    name: str
    def __init__(self, production: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Transformation(_message.Message):
    __slots__ = ("id", "production", "name", "status", "parents", "input_query", "output_query", "plugin", "group_size", "tasks", "max_attempts", "backend", "command", "spec", "created_at", "group_by", "max_runtime", "input_closed", "max_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_QUERY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_QUERY_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    INPUT_CLOSED_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: int
    production: str
    name: str
    status: str
    parents: _containers.RepeatedScalarFieldContainer[str]
    input_query: str
    output_query: str
    plugin: str
    group_size: int
    tasks: int
    max_attempts: int
    backend: str
    command: str
    spec: str
    created_at: _timestamp_pb2.Timestamp
    group_by: _containers.RepeatedScalarFieldContainer[str]
    max_runtime: int
    input_closed: bool
    max_bytes: int
    def __init__(self, id: _Optional[int] = ..., production: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[str] = ..., parents: _Optional[_Iterable[str]] = ..., input_query: _Optional[str] = ..., output_query: _Optional[str] = ..., plugin: _Optional[str] = ..., group_size: _Optional[int] = ..., tasks: _Optional[int] = ..., max_attempts: _Optional[int] = ..., backend: _Optional[str] = ..., command: _Optional[str] = ..., spec: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., group_by: _Optional[_Iterable[str]] = ..., max_runtime: _Optional[int] = ..., input_closed: _Optional[bool] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class CloseTransformationRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ...) -> None: ...

class CloseTransformationResponse(_message.Message):
    __slots__ = ("transformation",)
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    transformation: Transformation
    def __init__(self, transformation: _Optional[_Union[Transformation, _Mapping]] = ...) -> None: ...

class RetryResult(_message.Message):
    __slots__ = ("tasks", "files", "skipped")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    tasks: int
    files: int
    skipped: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tasks: _Optional[int] = ..., files: _Optional[int] = ..., skipped: _Optional[_Iterable[int]] = ...) -> None: ...

class RetryTransformationRequest(_message.Message):
    __slots__ = ("ref", "task_ids")
    REF_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    task_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ..., task_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RetryTransformationResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: RetryResult
    def __init__(self, result: _Optional[_Union[RetryResult, _Mapping]] = ...) -> None: ...

class RetryTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    def __init__(self, task_id: _Optional[int] = ...) -> None: ...

class RetryTaskResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: RetryResult
    def __init__(self, result: _Optional[_Union[RetryResult, _Mapping]] = ...) -> None: ...

class ExtendTransformationRequest(_message.Message):
    __slots__ = ("ref", "count")
    REF_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    count: int
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class ExtendTransformationResponse(_message.Message):
    __slots__ = ("transformation",)
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    transformation: Transformation
    def __init__(self, transformation: _Optional[_Union[Transformation, _Mapping]] = ...) -> None: ...

class FlushTransformationRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ...) -> None: ...

class FlushTransformationResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: int
    def __init__(self, tasks: _Optional[int] = ...) -> None: ...

class TransformationFile(_message.Message):
    __slots__ = ("lfn", "status", "task", "error_count")
    LFN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    lfn: str
    status: str
    task: int
    error_count: int
    def __init__(self, lfn: _Optional[str] = ..., status: _Optional[str] = ..., task: _Optional[int] = ..., error_count: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "index", "status", "attempt", "inputs", "backend_job_id", "last_error", "created_at", "updated_at", "transformation")
    ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    id: int
    index: int
    status: str
    attempt: int
    inputs: _containers.RepeatedScalarFieldContainer[str]
    backend_job_id: str
    last_error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    transformation: str
    def __init__(self, id: _Optional[int] = ..., index: _Optional[int] = ..., status: _Optional[str] = ..., attempt: _Optional[int] = ..., inputs: _Optional[_Iterable[str]] = ..., backend_job_id: _Optional[str] = ..., last_error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., transformation: _Optional[str] = ...) -> None: ...

class CreateTransformationRequest(_message.Message):
    __slots__ = ("production", "spec")
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    production: str
    spec: str
    def __init__(self, production: _Optional[str] = ..., spec: _Optional[str] = ...) -> None: ...

class CreateTransformationResponse(_message.Message):
    __slots__ = ("transformation", "warnings")
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    transformation: Transformation
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    def __init__(self, transformation: _Optional[_Union[Transformation, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ...) -> None: ...

class GetTransformationRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ...) -> None: ...

class GetTransformationResponse(_message.Message):
    __slots__ = ("transformation", "files", "tasks")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TasksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    transformation: Transformation
    files: _containers.ScalarMap[str, int]
    tasks: _containers.ScalarMap[str, int]
    def __init__(self, transformation: _Optional[_Union[Transformation, _Mapping]] = ..., files: _Optional[_Mapping[str, int]] = ..., tasks: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ListTransformationsRequest(_message.Message):
    __slots__ = ("production", "status")
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    production: str
    status: str
    def __init__(self, production: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class ListTransformationsResponse(_message.Message):
    __slots__ = ("transformations",)
    TRANSFORMATIONS_FIELD_NUMBER: _ClassVar[int]
    transformations: _containers.RepeatedCompositeFieldContainer[Transformation]
    def __init__(self, transformations: _Optional[_Iterable[_Union[Transformation, _Mapping]]] = ...) -> None: ...

class SetTransformationStatusRequest(_message.Message):
    __slots__ = ("ref", "status", "kill")
    REF_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    status: str
    kill: bool
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ..., status: _Optional[str] = ..., kill: _Optional[bool] = ...) -> None: ...

class SetTransformationStatusResponse(_message.Message):
    __slots__ = ("transformation",)
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    transformation: Transformation
    def __init__(self, transformation: _Optional[_Union[Transformation, _Mapping]] = ...) -> None: ...

class ListTransformationFilesRequest(_message.Message):
    __slots__ = ("ref", "status", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    status: str
    limit: int
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTransformationFilesResponse(_message.Message):
    __slots__ = ("files", "skipped_files")
    FILES_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[TransformationFile]
    skipped_files: int
    def __init__(self, files: _Optional[_Iterable[_Union[TransformationFile, _Mapping]]] = ..., skipped_files: _Optional[int] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("ref", "status", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    status: str
    limit: int
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class ResetFilesRequest(_message.Message):
    __slots__ = ("ref", "lfns")
    REF_FIELD_NUMBER: _ClassVar[int]
    LFNS_FIELD_NUMBER: _ClassVar[int]
    ref: TransformationRef
    lfns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ref: _Optional[_Union[TransformationRef, _Mapping]] = ..., lfns: _Optional[_Iterable[str]] = ...) -> None: ...

class ResetFilesResponse(_message.Message):
    __slots__ = ("reset",)
    RESET_FIELD_NUMBER: _ClassVar[int]
    reset: int
    def __init__(self, reset: _Optional[int] = ...) -> None: ...

class GetTaskLogRequest(_message.Message):
    __slots__ = ("task", "attempt")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task: int
    attempt: int
    def __init__(self, task: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class GetTaskLogResponse(_message.Message):
    __slots__ = ("task", "attempt", "log")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    task: int
    attempt: int
    log: str
    def __init__(self, task: _Optional[int] = ..., attempt: _Optional[int] = ..., log: _Optional[str] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: int
    def __init__(self, task: _Optional[int] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task", "production", "reused_from", "attempts", "outputs", "checkpoint")
    class Attempt(_message.Message):
        __slots__ = ("attempt", "status", "backend", "backend_job_id", "exit_code", "error", "submitted_at", "started_at", "heartbeat_at", "finished_at")
        ATTEMPT_FIELD_NUMBER: _ClassVar[int]
        STATUS_FIELD_NUMBER: _ClassVar[int]
        BACKEND_FIELD_NUMBER: _ClassVar[int]
        BACKEND_JOB_ID_FIELD_NUMBER: _ClassVar[int]
        EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
        STARTED_AT_FIELD_NUMBER: _ClassVar[int]
        HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
        FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
        attempt: int
        status: str
        backend: str
        backend_job_id: str
        exit_code: int
        error: str
        submitted_at: _timestamp_pb2.Timestamp
        started_at: _timestamp_pb2.Timestamp
        heartbeat_at: _timestamp_pb2.Timestamp
        finished_at: _timestamp_pb2.Timestamp
        def __init__(self, attempt: _Optional[int] = ..., status: _Optional[str] = ..., backend: _Optional[str] = ..., backend_job_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
    class CheckpointFile(_message.Message):
        __slots__ = ("path", "size", "modified")
        PATH_FIELD_NUMBER: _ClassVar[int]
        SIZE_FIELD_NUMBER: _ClassVar[int]
        MODIFIED_FIELD_NUMBER: _ClassVar[int]
        path: str
        size: int
        modified: _timestamp_pb2.Timestamp
        def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
    class Checkpoint(_message.Message):
        __slots__ = ("state", "location", "keep", "archive", "files", "error")
        STATE_FIELD_NUMBER: _ClassVar[int]
        LOCATION_FIELD_NUMBER: _ClassVar[int]
        KEEP_FIELD_NUMBER: _ClassVar[int]
        ARCHIVE_FIELD_NUMBER: _ClassVar[int]
        FILES_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        state: str
        location: str
        keep: bool
        archive: GetTaskResponse.CheckpointFile
        files: _containers.RepeatedCompositeFieldContainer[GetTaskResponse.CheckpointFile]
        error: str
        def __init__(self, state: _Optional[str] = ..., location: _Optional[str] = ..., keep: _Optional[bool] = ..., archive: _Optional[_Union[GetTaskResponse.CheckpointFile, _Mapping]] = ..., files: _Optional[_Iterable[_Union[GetTaskResponse.CheckpointFile, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    REUSED_FROM_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    task: Task
    production: str
    reused_from: int
    attempts: _containers.RepeatedCompositeFieldContainer[GetTaskResponse.Attempt]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    checkpoint: GetTaskResponse.Checkpoint
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., production: _Optional[str] = ..., reused_from: _Optional[int] = ..., attempts: _Optional[_Iterable[_Union[GetTaskResponse.Attempt, _Mapping]]] = ..., outputs: _Optional[_Iterable[str]] = ..., checkpoint: _Optional[_Union[GetTaskResponse.Checkpoint, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("task", "attempt", "queued", "started")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    task: int
    attempt: int
    queued: bool
    started: bool
    def __init__(self, task: _Optional[int] = ..., attempt: _Optional[int] = ..., queued: _Optional[bool] = ..., started: _Optional[bool] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("proceed", "withdrawn")
    PROCEED_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    proceed: bool
    withdrawn: bool
    def __init__(self, proceed: _Optional[bool] = ..., withdrawn: _Optional[bool] = ...) -> None: ...

class ReportTaskResultRequest(_message.Message):
    __slots__ = ("task", "attempt", "success", "error", "exit_code", "outputs")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    task: int
    attempt: int
    success: bool
    error: str
    exit_code: int
    outputs: _containers.RepeatedCompositeFieldContainer[_catalog_pb2.CatalogFile]
    def __init__(self, task: _Optional[int] = ..., attempt: _Optional[int] = ..., success: _Optional[bool] = ..., error: _Optional[str] = ..., exit_code: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[_catalog_pb2.CatalogFile, _Mapping]]] = ...) -> None: ...

class ReportTaskResultResponse(_message.Message):
    __slots__ = ("accepted", "status")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    status: str
    def __init__(self, accepted: _Optional[bool] = ..., status: _Optional[str] = ...) -> None: ...

class BundleHeartbeatRequest(_message.Message):
    __slots__ = ("attempts", "lease")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[HeartbeatRequest]
    lease: bool
    def __init__(self, attempts: _Optional[_Iterable[_Union[HeartbeatRequest, _Mapping]]] = ..., lease: _Optional[bool] = ...) -> None: ...

class BundleHeartbeatResponse(_message.Message):
    __slots__ = ("attempts", "lease_seconds")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[HeartbeatResponse]
    lease_seconds: float
    def __init__(self, attempts: _Optional[_Iterable[_Union[HeartbeatResponse, _Mapping]]] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class ReportBundleResultsRequest(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReportTaskResultRequest]
    def __init__(self, results: _Optional[_Iterable[_Union[ReportTaskResultRequest, _Mapping]]] = ...) -> None: ...

class ReportBundleResultsResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[ReportTaskResultResponse]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[ReportTaskResultResponse, _Mapping]]] = ...) -> None: ...
