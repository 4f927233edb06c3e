from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as _assignment_pb2
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as _report_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOT_READY: _ClassVar[MemberState]
    RUNNING: _ClassVar[MemberState]
    TERMINATING: _ClassVar[MemberState]
NOT_READY: MemberState
RUNNING: MemberState
TERMINATING: MemberState

class SliceLoad(_message.Message):
    __slots__ = ("low", "high", "load", "elsewhere")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    ELSEWHERE_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    load: float
    elsewhere: bool
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ..., load: _Optional[float] = ..., elsewhere: _Optional[bool] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("address", "state", "known", "load", "incarnation_id")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_ID_FIELD_NUMBER: _ClassVar[int]
    address: str
    state: MemberState
    known: _assignment_pb2.Generation
    load: _containers.RepeatedCompositeFieldContainer[SliceLoad]
    incarnation_id: str
    def __init__(self, address: _Optional[str] = ..., state: _Optional[_Union[MemberState, str]] = ..., known: _Optional[_Union[_assignment_pb2.Generation, _Mapping]] = ..., load: _Optional[_Iterable[_Union[SliceLoad, _Mapping]]] = ..., incarnation_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("update", "heartbeat_interval_ns", "unhealthy_after_ns")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_NS_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_AFTER_NS_FIELD_NUMBER: _ClassVar[int]
    update: _assignment_pb2.AssignmentUpdate
    heartbeat_interval_ns: int
    unhealthy_after_ns: int
    def __init__(self, update: _Optional[_Union[_assignment_pb2.AssignmentUpdate, _Mapping]] = ..., heartbeat_interval_ns: _Optional[int] = ..., unhealthy_after_ns: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("known", "wait_ns", "caller")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    WAIT_NS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    known: _assignment_pb2.Generation
    wait_ns: int
    caller: str
    def __init__(self, known: _Optional[_Union[_assignment_pb2.Generation, _Mapping]] = ..., wait_ns: _Optional[int] = ..., caller: _Optional[str] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("update",)
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    update: _assignment_pb2.AssignmentUpdate
    def __init__(self, update: _Optional[_Union[_assignment_pb2.AssignmentUpdate, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemberStatus(_message.Message):
    __slots__ = ("address", "state", "heartbeat_age_ns", "slices", "load")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_NS_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    address: str
    state: MemberState
    heartbeat_age_ns: int
    slices: int
    load: float
    def __init__(self, address: _Optional[str] = ..., state: _Optional[_Union[MemberState, str]] = ..., heartbeat_age_ns: _Optional[int] = ..., slices: _Optional[int] = ..., load: _Optional[float] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("assignment", "members", "assigner", "imbalance")
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNER_FIELD_NUMBER: _ClassVar[int]
    IMBALANCE_FIELD_NUMBER: _ClassVar[int]
    assignment: _assignment_pb2.Assignment
    members: _containers.RepeatedCompositeFieldContainer[MemberStatus]
    assigner: str
    imbalance: float
    def __init__(self, assignment: _Optional[_Union[_assignment_pb2.Assignment, _Mapping]] = ..., members: _Optional[_Iterable[_Union[MemberStatus, _Mapping]]] = ..., assigner: _Optional[str] = ..., imbalance: _Optional[float] = ...) -> None: ...

class CounterState(_message.Message):
    __slots__ = ("domain", "entries", "limit", "state")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    domain: str
    entries: _containers.RepeatedCompositeFieldContainer[_report_pb2.Entry]
    limit: _report_pb2.LimitSpec
    state: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, domain: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[_report_pb2.Entry, _Mapping]]] = ..., limit: _Optional[_Union[_report_pb2.LimitSpec, _Mapping]] = ..., state: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("generation", "source", "low", "high", "chunk", "chunks", "counters", "cold", "late")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    COLD_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    generation: _assignment_pb2.Generation
    source: str
    low: int
    high: int
    chunk: int
    chunks: int
    counters: _containers.RepeatedCompositeFieldContainer[CounterState]
    cold: _containers.RepeatedCompositeFieldContainer[ColdRange]
    late: bool
    def __init__(self, generation: _Optional[_Union[_assignment_pb2.Generation, _Mapping]] = ..., source: _Optional[str] = ..., low: _Optional[int] = ..., high: _Optional[int] = ..., chunk: _Optional[int] = ..., chunks: _Optional[int] = ..., counters: _Optional[_Iterable[_Union[CounterState, _Mapping]]] = ..., cold: _Optional[_Iterable[_Union[ColdRange, _Mapping]]] = ..., late: _Optional[bool] = ...) -> None: ...

class ColdRange(_message.Message):
    __slots__ = ("low", "high", "age_ns")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    AGE_NS_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    age_ns: int
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ..., age_ns: _Optional[int] = ...) -> None: ...

class TransferResponse(_message.Message):
    __slots__ = ("taken",)
    TAKEN_FIELD_NUMBER: _ClassVar[int]
    taken: int
    def __init__(self, taken: _Optional[int] = ...) -> None: ...
