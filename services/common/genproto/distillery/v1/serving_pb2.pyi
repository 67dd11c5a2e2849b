from distillery.v1 import common_pb2 as _common_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Quantization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUANTIZATION_UNSPECIFIED: _ClassVar[Quantization]
    QUANTIZATION_NONE: _ClassVar[Quantization]
    QUANTIZATION_INT8: _ClassVar[Quantization]
    QUANTIZATION_INT4: _ClassVar[Quantization]
QUANTIZATION_UNSPECIFIED: Quantization
QUANTIZATION_NONE: Quantization
QUANTIZATION_INT8: Quantization
QUANTIZATION_INT4: Quantization

class StartExportRequest(_message.Message):
    __slots__ = ("task", "model", "adapter", "quantizations", "min_parity", "model_name", "model_version", "output_prefix", "request_id", "parity_inputs", "gguf")
    TASK_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_PARITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARITY_INPUTS_FIELD_NUMBER: _ClassVar[int]
    GGUF_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskSpec
    model: _common_pb2.ModelRef
    adapter: _common_pb2.ModelRef
    quantizations: _containers.RepeatedScalarFieldContainer[Quantization]
    min_parity: float
    model_name: str
    model_version: str
    output_prefix: str
    request_id: str
    parity_inputs: _common_pb2.ArtifactRef
    gguf: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., adapter: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., quantizations: _Optional[_Iterable[_Union[Quantization, str]]] = ..., min_parity: _Optional[float] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., output_prefix: _Optional[str] = ..., request_id: _Optional[str] = ..., parity_inputs: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., gguf: _Optional[_Iterable[str]] = ...) -> None: ...

class GgufFile(_message.Message):
    __slots__ = ("quantization", "path", "size_bytes", "error")
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    quantization: str
    path: str
    size_bytes: int
    error: str
    def __init__(self, quantization: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ExportVariant(_message.Message):
    __slots__ = ("quantization", "onnx", "parity", "accepted", "reason")
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    PARITY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    quantization: Quantization
    onnx: _common_pb2.ArtifactRef
    parity: float
    accepted: bool
    reason: str
    def __init__(self, quantization: _Optional[_Union[Quantization, str]] = ..., onnx: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., parity: _Optional[float] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ExportResult(_message.Message):
    __slots__ = ("variants", "bundle", "model_card", "model_name", "model_version", "gguf")
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    MODEL_CARD_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GGUF_FIELD_NUMBER: _ClassVar[int]
    variants: _containers.RepeatedCompositeFieldContainer[ExportVariant]
    bundle: _common_pb2.ArtifactRef
    model_card: _common_pb2.ArtifactRef
    model_name: str
    model_version: str
    gguf: _containers.RepeatedCompositeFieldContainer[GgufFile]
    def __init__(self, variants: _Optional[_Iterable[_Union[ExportVariant, _Mapping]]] = ..., bundle: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., model_card: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., gguf: _Optional[_Iterable[_Union[GgufFile, _Mapping]]] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("name", "version", "bundle", "quantization", "task")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    bundle: _common_pb2.ArtifactRef
    quantization: Quantization
    task: _common_pb2.TaskSpec
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., bundle: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., quantization: _Optional[_Union[Quantization, str]] = ..., task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "ready", "task_type", "quantization", "uri")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    ready: bool
    task_type: _common_pb2.TaskType
    quantization: Quantization
    uri: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., ready: _Optional[bool] = ..., task_type: _Optional[_Union[_common_pb2.TaskType, str]] = ..., quantization: _Optional[_Union[Quantization, str]] = ..., uri: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "inputs", "contexts", "max_tokens", "unconstrained", "parameters")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    UNCONSTRAINED_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    contexts: _containers.RepeatedScalarFieldContainer[str]
    max_tokens: int
    unconstrained: bool
    parameters: _struct_pb2.Struct
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ..., contexts: _Optional[_Iterable[str]] = ..., max_tokens: _Optional[int] = ..., unconstrained: _Optional[bool] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("output", "label_probabilities", "completion_tokens")
    class LabelProbabilitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    LABEL_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    output: str
    label_probabilities: _containers.ScalarMap[str, float]
    completion_tokens: int
    def __init__(self, output: _Optional[str] = ..., label_probabilities: _Optional[_Mapping[str, float]] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "model_name", "model_version")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    model_name: str
    model_version: str
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "input", "context", "max_tokens")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    input: str
    context: str
    max_tokens: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., input: _Optional[str] = ..., context: _Optional[str] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("delta", "finished")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    delta: str
    finished: bool
    def __init__(self, delta: _Optional[str] = ..., finished: _Optional[bool] = ...) -> None: ...
