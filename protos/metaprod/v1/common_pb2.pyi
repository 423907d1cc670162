from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class MetaValue(_message.Message):
    __slots__ = ("int_value", "float_value", "str_value")
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STR_VALUE_FIELD_NUMBER: _ClassVar[int]
    int_value: int
    float_value: float
    str_value: str
    def __init__(self, int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., str_value: _Optional[str] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("code", "transformations", "key", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMATIONS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    transformations: _containers.RepeatedScalarFieldContainer[str]
    key: str
    message: str
    def __init__(self, code: _Optional[str] = ..., transformations: _Optional[_Iterable[str]] = ..., key: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
