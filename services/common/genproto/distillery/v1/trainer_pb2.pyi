from distillery.v1 import common_pb2 as _common_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartTrainingRequest(_message.Message):
    __slots__ = ("task", "train", "student", "config", "output_prefix", "request_id", "seeds")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    STUDENT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskSpec
    train: _common_pb2.ArtifactRef
    student: _common_pb2.ModelRef
    config: _struct_pb2.Struct
    output_prefix: str
    request_id: str
    seeds: _common_pb2.ArtifactRef
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., train: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., student: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_prefix: _Optional[str] = ..., request_id: _Optional[str] = ..., seeds: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...

class TrainingResult(_message.Message):
    __slots__ = ("adapter", "merged", "adapter_artifact", "merged_artifact", "metrics", "steps", "final_train_loss", "final_eval_loss", "seconds", "device")
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    MERGED_ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    FINAL_EVAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    adapter: _common_pb2.ModelRef
    merged: _common_pb2.ModelRef
    adapter_artifact: _common_pb2.ArtifactRef
    merged_artifact: _common_pb2.ArtifactRef
    metrics: _common_pb2.ArtifactRef
    steps: int
    final_train_loss: float
    final_eval_loss: float
    seconds: float
    device: str
    def __init__(self, adapter: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., merged: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., adapter_artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., merged_artifact: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., metrics: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., steps: _Optional[int] = ..., final_train_loss: _Optional[float] = ..., final_eval_loss: _Optional[float] = ..., seconds: _Optional[float] = ..., device: _Optional[str] = ...) -> None: ...
