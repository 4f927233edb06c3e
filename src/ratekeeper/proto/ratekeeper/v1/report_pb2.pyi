from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as _assignment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Algorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_BUCKET: _ClassVar[Algorithm]
    FIXED_WINDOW: _ClassVar[Algorithm]
    SLIDING_WINDOW: _ClassVar[Algorithm]
TOKEN_BUCKET: Algorithm
FIXED_WINDOW: Algorithm
SLIDING_WINDOW: Algorithm

class LimitSpec(_message.Message):
    __slots__ = ("amount", "unit_seconds", "multiplier", "burst", "algorithm")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    UNIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    amount: int
    unit_seconds: int
    multiplier: int
    burst: int
    algorithm: Algorithm
    def __init__(self, amount: _Optional[int] = ..., unit_seconds: _Optional[int] = ..., multiplier: _Optional[int] = ..., burst: _Optional[int] = ..., algorithm: _Optional[_Union[Algorithm, str]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class KeyReport(_message.Message):
    __slots__ = ("domain", "entries", "admitted", "rejected", "limits", "key_id")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    domain: str
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    admitted: int
    rejected: int
    limits: _containers.RepeatedCompositeFieldContainer[LimitSpec]
    key_id: int
    def __init__(self, domain: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., admitted: _Optional[int] = ..., rejected: _Optional[int] = ..., limits: _Optional[_Iterable[_Union[LimitSpec, _Mapping]]] = ..., key_id: _Optional[int] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("client_id", "generation", "interval_ns", "keys", "sequence", "known_ids", "known_admitted", "known_rejected", "omit_unchanged")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_NS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KNOWN_IDS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_ADMITTED_FIELD_NUMBER: _ClassVar[int]
    KNOWN_REJECTED_FIELD_NUMBER: _ClassVar[int]
    OMIT_UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    generation: _assignment_pb2.Generation
    interval_ns: int
    keys: _containers.RepeatedCompositeFieldContainer[KeyReport]
    sequence: int
    known_ids: _containers.RepeatedScalarFieldContainer[int]
    known_admitted: _containers.RepeatedScalarFieldContainer[int]
    known_rejected: _containers.RepeatedScalarFieldContainer[int]
    omit_unchanged: bool
    def __init__(self, client_id: _Optional[str] = ..., generation: _Optional[_Union[_assignment_pb2.Generation, _Mapping]] = ..., interval_ns: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[KeyReport, _Mapping]]] = ..., sequence: _Optional[int] = ..., known_ids: _Optional[_Iterable[int]] = ..., known_admitted: _Optional[_Iterable[int]] = ..., known_rejected: _Optional[_Iterable[int]] = ..., omit_unchanged: _Optional[bool] = ...) -> None: ...

class KeyInstruction(_message.Message):
    __slots__ = ("reject_for_ns", "admit_rate", "valid_for_ns", "limits", "error")
    REJECT_FOR_NS_FIELD_NUMBER: _ClassVar[int]
    ADMIT_RATE_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_NS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    reject_for_ns: int
    admit_rate: float
    valid_for_ns: int
    limits: _containers.RepeatedCompositeFieldContainer[LimitSpec]
    error: str
    def __init__(self, reject_for_ns: _Optional[int] = ..., admit_rate: _Optional[float] = ..., valid_for_ns: _Optional[int] = ..., limits: _Optional[_Iterable[_Union[LimitSpec, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("instructions", "generation", "hot", "assignment", "changed", "changed_instructions", "valid_for_ns", "unknown_ids")
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    HOT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_NS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_IDS_FIELD_NUMBER: _ClassVar[int]
    instructions: _containers.RepeatedCompositeFieldContainer[KeyInstruction]
    generation: _assignment_pb2.Generation
    hot: _containers.RepeatedCompositeFieldContainer[HotKey]
    assignment: _assignment_pb2.AssignmentUpdate
    changed: _containers.RepeatedScalarFieldContainer[int]
    changed_instructions: _containers.RepeatedCompositeFieldContainer[KeyInstruction]
    valid_for_ns: int
    unknown_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, instructions: _Optional[_Iterable[_Union[KeyInstruction, _Mapping]]] = ..., generation: _Optional[_Union[_assignment_pb2.Generation, _Mapping]] = ..., hot: _Optional[_Iterable[_Union[HotKey, _Mapping]]] = ..., assignment: _Optional[_Union[_assignment_pb2.AssignmentUpdate, _Mapping]] = ..., changed: _Optional[_Iterable[int]] = ..., changed_instructions: _Optional[_Iterable[_Union[KeyInstruction, _Mapping]]] = ..., valid_for_ns: _Optional[int] = ..., unknown_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class HotKey(_message.Message):
    __slots__ = ("key_hash", "reject_for_ns")
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    REJECT_FOR_NS_FIELD_NUMBER: _ClassVar[int]
    key_hash: int
    reject_for_ns: int
    def __init__(self, key_hash: _Optional[int] = ..., reject_for_ns: _Optional[int] = ...) -> None: ...
