from distillery.v1 import common_pb2 as _common_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartGenerationRequest(_message.Message):
    __slots__ = ("task", "seeds", "context", "target_count", "temperature", "top_p", "random_seed", "output_prefix", "request_id", "index_offset")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TARGET_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_OFFSET_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskSpec
    seeds: _common_pb2.ArtifactRef
    context: _common_pb2.ArtifactRef
    target_count: int
    temperature: float
    top_p: float
    random_seed: int
    output_prefix: str
    request_id: str
    index_offset: int
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., seeds: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., target_count: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., random_seed: _Optional[int] = ..., output_prefix: _Optional[str] = ..., request_id: _Optional[str] = ..., index_offset: _Optional[int] = ...) -> None: ...

class GenerationResult(_message.Message):
    __slots__ = ("examples", "rejected", "generated", "rejected_count", "prompt_tokens", "completion_tokens", "estimated_cost_usd", "seconds", "teacher", "teacher_seed_accuracy", "teacher_seed_count", "teacher_seed_label_accuracy", "teacher_trust_accuracy", "label_source", "label_source_reason", "shortfall")
    class TeacherSeedLabelAccuracyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    TEACHER_SEED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TEACHER_SEED_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEACHER_SEED_LABEL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TEACHER_TRUST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LABEL_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SOURCE_REASON_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_FIELD_NUMBER: _ClassVar[int]
    examples: _common_pb2.ArtifactRef
    rejected: _common_pb2.ArtifactRef
    generated: int
    rejected_count: int
    prompt_tokens: int
    completion_tokens: int
    estimated_cost_usd: float
    seconds: float
    teacher: str
    teacher_seed_accuracy: float
    teacher_seed_count: int
    teacher_seed_label_accuracy: _containers.ScalarMap[str, float]
    teacher_trust_accuracy: float
    label_source: str
    label_source_reason: str
    shortfall: str
    def __init__(self, examples: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., rejected: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., generated: _Optional[int] = ..., rejected_count: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., estimated_cost_usd: _Optional[float] = ..., seconds: _Optional[float] = ..., teacher: _Optional[str] = ..., teacher_seed_accuracy: _Optional[float] = ..., teacher_seed_count: _Optional[int] = ..., teacher_seed_label_accuracy: _Optional[_Mapping[str, float]] = ..., teacher_trust_accuracy: _Optional[float] = ..., label_source: _Optional[str] = ..., label_source_reason: _Optional[str] = ..., shortfall: _Optional[str] = ...) -> None: ...

class OutputConstraint(_message.Message):
    __slots__ = ("choice", "json_schema", "regex")
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    choice: ChoiceList
    json_schema: str
    regex: str
    def __init__(self, choice: _Optional[_Union[ChoiceList, _Mapping]] = ..., json_schema: _Optional[str] = ..., regex: _Optional[str] = ...) -> None: ...

class ChoiceList(_message.Message):
    __slots__ = ("choices",)
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    choices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, choices: _Optional[_Iterable[str]] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("text", "chat")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    text: str
    chat: ChatList
    def __init__(self, text: _Optional[str] = ..., chat: _Optional[_Union[ChatList, _Mapping]] = ...) -> None: ...

class ChatList(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("prompts", "constraint", "max_tokens", "temperature", "top_p", "random_seed", "stop", "choice_logprobs")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    CHOICE_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedCompositeFieldContainer[Prompt]
    constraint: OutputConstraint
    max_tokens: int
    temperature: float
    top_p: float
    random_seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    choice_logprobs: bool
    def __init__(self, prompts: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ..., constraint: _Optional[_Union[OutputConstraint, _Mapping]] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., random_seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., choice_logprobs: _Optional[bool] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("text", "prompt_tokens", "completion_tokens", "choice_probabilities")
    class ChoiceProbabilitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CHOICE_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    text: str
    prompt_tokens: int
    completion_tokens: int
    choice_probabilities: _containers.ScalarMap[str, float]
    def __init__(self, text: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., choice_probabilities: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CompleteResponse(_message.Message):
    __slots__ = ("completions", "model", "seconds")
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    model: str
    seconds: float
    def __init__(self, completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ..., model: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class LabelRequest(_message.Message):
    __slots__ = ("task", "seeds", "examples", "temperature", "random_seed", "max_tokens")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskSpec
    seeds: _common_pb2.ArtifactRef
    examples: _containers.RepeatedCompositeFieldContainer[_common_pb2.Example]
    temperature: float
    random_seed: int
    max_tokens: int
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., seeds: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., examples: _Optional[_Iterable[_Union[_common_pb2.Example, _Mapping]]] = ..., temperature: _Optional[float] = ..., random_seed: _Optional[int] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class LabelResponse(_message.Message):
    __slots__ = ("completions", "model", "seconds")
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    model: str
    seconds: float
    def __init__(self, completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ..., model: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...
