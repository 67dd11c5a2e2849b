from distillery.v1 import common_pb2 as _common_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartValidationRequest(_message.Message):
    __slots__ = ("task", "examples", "seeds", "test", "config", "output_prefix", "request_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskSpec
    examples: _common_pb2.ArtifactRef
    seeds: _common_pb2.ArtifactRef
    test: _common_pb2.ArtifactRef
    config: _struct_pb2.Struct
    output_prefix: str
    request_id: str
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., examples: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., seeds: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., test: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_prefix: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ValidationResult(_message.Message):
    __slots__ = ("accepted", "rejected", "report", "read", "accepted_count", "rejected_count", "rejected_by_reason")
    class RejectedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: _common_pb2.ArtifactRef
    rejected: _common_pb2.ArtifactRef
    report: _common_pb2.ArtifactRef
    read: int
    accepted_count: int
    rejected_count: int
    rejected_by_reason: _containers.ScalarMap[str, int]
    def __init__(self, accepted: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., rejected: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., report: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., read: _Optional[int] = ..., accepted_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., rejected_by_reason: _Optional[_Mapping[str, int]] = ...) -> None: ...
