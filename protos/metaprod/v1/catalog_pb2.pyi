import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from metaprod.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Field(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("production", "transformation", "task", "attempt", "inputs", "reused_from")
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FROM_FIELD_NUMBER: _ClassVar[int]
    production: str
    transformation: str
    task: int
    attempt: int
    inputs: _containers.RepeatedScalarFieldContainer[str]
    reused_from: int
    def __init__(self, production: _Optional[str] = ..., transformation: _Optional[str] = ..., task: _Optional[int] = ..., attempt: _Optional[int] = ..., inputs: _Optional[_Iterable[str]] = ..., reused_from: _Optional[int] = ...) -> None: ...

class CatalogFile(_message.Message):
    __slots__ = ("lfn", "pfn", "size", "checksum", "metadata", "created_at", "provenance", "has_provenance", "owner")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.MetaValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.MetaValue, _Mapping]] = ...) -> None: ...
    LFN_FIELD_NUMBER: _ClassVar[int]
    PFN_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    HAS_PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    lfn: str
    pfn: str
    size: int
    checksum: str
    metadata: _containers.MessageMap[str, _common_pb2.MetaValue]
    created_at: _timestamp_pb2.Timestamp
    provenance: Provenance
    has_provenance: bool
    owner: str
    def __init__(self, lfn: _Optional[str] = ..., pfn: _Optional[str] = ..., size: _Optional[int] = ..., checksum: _Optional[str] = ..., metadata: _Optional[_Mapping[str, _common_pb2.MetaValue]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., has_provenance: _Optional[bool] = ..., owner: _Optional[str] = ...) -> None: ...

class AddFieldRequest(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class AddFieldResponse(_message.Message):
    __slots__ = ("field", "created")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    field: Field
    created: bool
    def __init__(self, field: _Optional[_Union[Field, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListFieldsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFieldsResponse(_message.Message):
    __slots__ = ("fields",)
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    def __init__(self, fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ...) -> None: ...

class RegisterFilesRequest(_message.Message):
    __slots__ = ("files", "skip_existing")
    FILES_FIELD_NUMBER: _ClassVar[int]
    SKIP_EXISTING_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[CatalogFile]
    skip_existing: bool
    def __init__(self, files: _Optional[_Iterable[_Union[CatalogFile, _Mapping]]] = ..., skip_existing: _Optional[bool] = ...) -> None: ...

class RegisterFilesResponse(_message.Message):
    __slots__ = ("registered", "attached", "skipped")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    registered: int
    attached: int
    skipped: int
    def __init__(self, registered: _Optional[int] = ..., attached: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class FindFilesRequest(_message.Message):
    __slots__ = ("query", "limit", "with_metadata")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WITH_METADATA_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    with_metadata: bool
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ..., with_metadata: _Optional[bool] = ...) -> None: ...

class FindFilesResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[CatalogFile]
    def __init__(self, files: _Optional[_Iterable[_Union[CatalogFile, _Mapping]]] = ...) -> None: ...

class GetFileRequest(_message.Message):
    __slots__ = ("lfn",)
    LFN_FIELD_NUMBER: _ClassVar[int]
    lfn: str
    def __init__(self, lfn: _Optional[str] = ...) -> None: ...

class GetFileResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: CatalogFile
    def __init__(self, file: _Optional[_Union[CatalogFile, _Mapping]] = ...) -> None: ...

class SetMetadataRequest(_message.Message):
    __slots__ = ("lfn", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.MetaValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.MetaValue, _Mapping]] = ...) -> None: ...
    LFN_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    lfn: str
    metadata: _containers.MessageMap[str, _common_pb2.MetaValue]
    def __init__(self, lfn: _Optional[str] = ..., metadata: _Optional[_Mapping[str, _common_pb2.MetaValue]] = ...) -> None: ...

class SetMetadataResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: CatalogFile
    def __init__(self, file: _Optional[_Union[CatalogFile, _Mapping]] = ...) -> None: ...

class GetLineageRequest(_message.Message):
    __slots__ = ("lfn", "max_depth")
    LFN_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    lfn: str
    max_depth: int
    def __init__(self, lfn: _Optional[str] = ..., max_depth: _Optional[int] = ...) -> None: ...

class GetLineageResponse(_message.Message):
    __slots__ = ("lfn", "ancestors", "descendants", "truncated")
    LFN_FIELD_NUMBER: _ClassVar[int]
    ANCESTORS_FIELD_NUMBER: _ClassVar[int]
    DESCENDANTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    lfn: str
    ancestors: _containers.RepeatedScalarFieldContainer[str]
    descendants: _containers.RepeatedScalarFieldContainer[str]
    truncated: bool
    def __init__(self, lfn: _Optional[str] = ..., ancestors: _Optional[_Iterable[str]] = ..., descendants: _Optional[_Iterable[str]] = ..., truncated: _Optional[bool] = ...) -> None: ...
