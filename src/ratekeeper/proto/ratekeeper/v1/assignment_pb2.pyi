from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Generation(_message.Message):
    __slots__ = ("incarnation", "number")
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    incarnation: int
    number: int
    def __init__(self, incarnation: _Optional[int] = ..., number: _Optional[int] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("generation", "servers", "starts", "owners")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    generation: Generation
    servers: _containers.RepeatedScalarFieldContainer[str]
    starts: _containers.RepeatedScalarFieldContainer[int]
    owners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, generation: _Optional[_Union[Generation, _Mapping]] = ..., servers: _Optional[_Iterable[str]] = ..., starts: _Optional[_Iterable[int]] = ..., owners: _Optional[_Iterable[int]] = ...) -> None: ...

class AssignmentDiff(_message.Message):
    __slots__ = ("base", "generation", "servers", "lows", "highs", "owners")
    BASE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    LOWS_FIELD_NUMBER: _ClassVar[int]
    HIGHS_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    base: Generation
    generation: Generation
    servers: _containers.RepeatedScalarFieldContainer[str]
    lows: _containers.RepeatedScalarFieldContainer[int]
    highs: _containers.RepeatedScalarFieldContainer[int]
    owners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, base: _Optional[_Union[Generation, _Mapping]] = ..., generation: _Optional[_Union[Generation, _Mapping]] = ..., servers: _Optional[_Iterable[str]] = ..., lows: _Optional[_Iterable[int]] = ..., highs: _Optional[_Iterable[int]] = ..., owners: _Optional[_Iterable[int]] = ...) -> None: ...

class AssignmentUpdate(_message.Message):
    __slots__ = ("whole", "diff")
    WHOLE_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    whole: Assignment
    diff: AssignmentDiff
    def __init__(self, whole: _Optional[_Union[Assignment, _Mapping]] = ..., diff: _Optional[_Union[AssignmentDiff, _Mapping]] = ...) -> None: ...
