import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_TYPE_UNSPECIFIED: _ClassVar[TaskType]
    TASK_TYPE_CLASSIFICATION: _ClassVar[TaskType]
    TASK_TYPE_EXTRACTION: _ClassVar[TaskType]
    TASK_TYPE_QA_OPEN_BOOK: _ClassVar[TaskType]
    TASK_TYPE_QA_CLOSED_BOOK: _ClassVar[TaskType]
    TASK_TYPE_TOOL_CALLING: _ClassVar[TaskType]
    TASK_TYPE_MULTI_TURN_TOOL_CALLING: _ClassVar[TaskType]

class ModelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_FORMAT_UNSPECIFIED: _ClassVar[ModelFormat]
    MODEL_FORMAT_HF: _ClassVar[ModelFormat]
    MODEL_FORMAT_PEFT_ADAPTER: _ClassVar[ModelFormat]
    MODEL_FORMAT_ONNX: _ClassVar[ModelFormat]
    MODEL_FORMAT_GGUF: _ClassVar[ModelFormat]
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_CLASSIFICATION: TaskType
TASK_TYPE_EXTRACTION: TaskType
TASK_TYPE_QA_OPEN_BOOK: TaskType
TASK_TYPE_QA_CLOSED_BOOK: TaskType
TASK_TYPE_TOOL_CALLING: TaskType
TASK_TYPE_MULTI_TURN_TOOL_CALLING: TaskType
MODEL_FORMAT_UNSPECIFIED: ModelFormat
MODEL_FORMAT_HF: ModelFormat
MODEL_FORMAT_PEFT_ADAPTER: ModelFormat
MODEL_FORMAT_ONNX: ModelFormat
MODEL_FORMAT_GGUF: ModelFormat

class ArtifactRef(_message.Message):
    __slots__ = ("uri", "sha256", "size")
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    uri: str
    sha256: str
    size: int
    def __init__(self, uri: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("uri", "format", "base")
    URI_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    uri: str
    format: ModelFormat
    base: str
    def __init__(self, uri: _Optional[str] = ..., format: _Optional[_Union[ModelFormat, str]] = ..., base: _Optional[str] = ...) -> None: ...

class Example(_message.Message):
    __slots__ = ("id", "input", "output", "context", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    input: str
    output: str
    context: str
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., input: _Optional[str] = ..., output: _Optional[str] = ..., context: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ToolSchema(_message.Message):
    __slots__ = ("name", "description", "parameters", "parameters_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: _struct_pb2.Struct
    parameters_json: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., parameters_json: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("name", "type", "description", "labels", "label_descriptions", "output_schema", "tools", "allow_no_call", "input_description", "judge_instructions", "topics", "teacher", "student", "settings", "output_schema_json")
    class LabelDescriptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LABEL_DESCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_NO_CALL_FIELD_NUMBER: _ClassVar[int]
    INPUT_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    JUDGE_INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    STUDENT_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: TaskType
    description: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    label_descriptions: _containers.ScalarMap[str, str]
    output_schema: _struct_pb2.Struct
    tools: _containers.RepeatedCompositeFieldContainer[ToolSchema]
    allow_no_call: bool
    input_description: str
    judge_instructions: str
    topics: _containers.RepeatedScalarFieldContainer[str]
    teacher: ModelRef
    student: ModelRef
    settings: _struct_pb2.Struct
    output_schema_json: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[TaskType, str]] = ..., description: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., label_descriptions: _Optional[_Mapping[str, str]] = ..., output_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[ToolSchema, _Mapping]]] = ..., allow_no_call: _Optional[bool] = ..., input_description: _Optional[str] = ..., judge_instructions: _Optional[str] = ..., topics: _Optional[_Iterable[str]] = ..., teacher: _Optional[_Union[ModelRef, _Mapping]] = ..., student: _Optional[_Union[ModelRef, _Mapping]] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_schema_json: _Optional[str] = ...) -> None: ...

class OperationMetadata(_message.Message):
    __slots__ = ("service", "stage", "done", "total", "unit", "rate", "eta_seconds", "counters", "message", "create_time", "update_time", "state", "replica")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    service: str
    stage: str
    done: int
    total: int
    unit: str
    rate: float
    eta_seconds: float
    counters: _containers.ScalarMap[str, float]
    message: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    state: str
    replica: str
    def __init__(self, service: _Optional[str] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., unit: _Optional[str] = ..., rate: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., counters: _Optional[_Mapping[str, float]] = ..., message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ..., replica: _Optional[str] = ...) -> None: ...

class WatchOperationRequest(_message.Message):
    __slots__ = ("name", "interval_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    interval_seconds: float
    def __init__(self, name: _Optional[str] = ..., interval_seconds: _Optional[float] = ...) -> None: ...
