import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metaprod.v1 import common_pb2 as _common_pb2
from metaprod.v1 import transformation_pb2 as _transformation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProductionEvent(_message.Message):
    __slots__ = ("time", "actor", "event", "transformation", "detail")
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    actor: str
    event: str
    transformation: str
    detail: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., event: _Optional[str] = ..., transformation: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class CloseProductionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CloseProductionResponse(_message.Message):
    __slots__ = ("closed",)
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    closed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, closed: _Optional[_Iterable[str]] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ProductionEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[ProductionEvent, _Mapping]]] = ...) -> None: ...

class Production(_message.Message):
    __slots__ = ("name", "description", "status", "owner", "transformations", "created_at", "updated_at", "namespace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    status: str
    owner: str
    transformations: _containers.RepeatedCompositeFieldContainer[_transformation_pb2.Transformation]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    namespace: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., status: _Optional[str] = ..., owner: _Optional[str] = ..., transformations: _Optional[_Iterable[_Union[_transformation_pb2.Transformation, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., namespace: _Optional[str] = ...) -> None: ...

class TransformationProgress(_message.Message):
    __slots__ = ("name", "status", "files", "tasks", "percent", "failed_percent", "skipped_files", "reused_tasks")
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
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_PERCENT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FILES_FIELD_NUMBER: _ClassVar[int]
    REUSED_TASKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    files: _containers.ScalarMap[str, int]
    tasks: _containers.ScalarMap[str, int]
    percent: float
    failed_percent: float
    skipped_files: int
    reused_tasks: int
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., files: _Optional[_Mapping[str, int]] = ..., tasks: _Optional[_Mapping[str, int]] = ..., percent: _Optional[float] = ..., failed_percent: _Optional[float] = ..., skipped_files: _Optional[int] = ..., reused_tasks: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("name", "status", "percent", "transformations", "failed_percent", "skipped_files")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATIONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_PERCENT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FILES_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    percent: float
    transformations: _containers.RepeatedCompositeFieldContainer[TransformationProgress]
    failed_percent: float
    skipped_files: int
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., percent: _Optional[float] = ..., transformations: _Optional[_Iterable[_Union[TransformationProgress, _Mapping]]] = ..., failed_percent: _Optional[float] = ..., skipped_files: _Optional[int] = ...) -> None: ...

class CreateProductionRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: str
    def __init__(self, spec: _Optional[str] = ...) -> None: ...

class CreateProductionResponse(_message.Message):
    __slots__ = ("production", "warnings")
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    production: Production
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    def __init__(self, production: _Optional[_Union[Production, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ...) -> None: ...

class ValidateProductionRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: str
    def __init__(self, spec: _Optional[str] = ...) -> None: ...

class ValidateProductionResponse(_message.Message):
    __slots__ = ("ok", "errors", "warnings")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    def __init__(self, ok: _Optional[bool] = ..., errors: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ...) -> None: ...

class AddTransformationRequest(_message.Message):
    __slots__ = ("production", "spec")
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    production: str
    spec: str
    def __init__(self, production: _Optional[str] = ..., spec: _Optional[str] = ...) -> None: ...

class AddTransformationResponse(_message.Message):
    __slots__ = ("transformation", "warnings")
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    transformation: _transformation_pb2.Transformation
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Finding]
    def __init__(self, transformation: _Optional[_Union[_transformation_pb2.Transformation, _Mapping]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.Finding, _Mapping]]] = ...) -> None: ...

class StartProductionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StartProductionResponse(_message.Message):
    __slots__ = ("production",)
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    production: Production
    def __init__(self, production: _Optional[_Union[Production, _Mapping]] = ...) -> None: ...

class StopProductionRequest(_message.Message):
    __slots__ = ("name", "kill")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    name: str
    kill: bool
    def __init__(self, name: _Optional[str] = ..., kill: _Optional[bool] = ...) -> None: ...

class StopProductionResponse(_message.Message):
    __slots__ = ("production",)
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    production: Production
    def __init__(self, production: _Optional[_Union[Production, _Mapping]] = ...) -> None: ...

class DeleteProductionRequest(_message.Message):
    __slots__ = ("name", "purge_outputs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PURGE_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    purge_outputs: bool
    def __init__(self, name: _Optional[str] = ..., purge_outputs: _Optional[bool] = ...) -> None: ...

class DeleteProductionResponse(_message.Message):
    __slots__ = ("production",)
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    production: Production
    def __init__(self, production: _Optional[_Union[Production, _Mapping]] = ...) -> None: ...

class GetProductionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetProductionResponse(_message.Message):
    __slots__ = ("production",)
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    production: Production
    def __init__(self, production: _Optional[_Union[Production, _Mapping]] = ...) -> None: ...

class ListProductionsRequest(_message.Message):
    __slots__ = ("status", "all")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    status: str
    all: bool
    def __init__(self, status: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class ListProductionsResponse(_message.Message):
    __slots__ = ("productions",)
    PRODUCTIONS_FIELD_NUMBER: _ClassVar[int]
    productions: _containers.RepeatedCompositeFieldContainer[Production]
    def __init__(self, productions: _Optional[_Iterable[_Union[Production, _Mapping]]] = ...) -> None: ...

class GetProgressRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetProgressResponse(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...

class WatchProgressRequest(_message.Message):
    __slots__ = ("name", "interval_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    interval_seconds: float
    def __init__(self, name: _Optional[str] = ..., interval_seconds: _Optional[float] = ...) -> None: ...

class WatchProgressResponse(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ...) -> None: ...
