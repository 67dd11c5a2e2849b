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

class CandidateKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_KIND_UNSPECIFIED: _ClassVar[CandidateKind]
    CANDIDATE_KIND_TEACHER: _ClassVar[CandidateKind]
    CANDIDATE_KIND_STUDENT: _ClassVar[CandidateKind]
    CANDIDATE_KIND_ONNX: _ClassVar[CandidateKind]
CANDIDATE_KIND_UNSPECIFIED: CandidateKind
CANDIDATE_KIND_TEACHER: CandidateKind
CANDIDATE_KIND_STUDENT: CandidateKind
CANDIDATE_KIND_ONNX: CandidateKind

class Candidate(_message.Message):
    __slots__ = ("name", "kind", "model", "endpoint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: CandidateKind
    model: _common_pb2.ModelRef
    endpoint: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[CandidateKind, str]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., endpoint: _Optional[str] = ...) -> None: ...

class StartEvaluationRequest(_message.Message):
    __slots__ = ("task", "test", "candidates", "seeds", "config", "output_prefix", "request_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.TaskSpec
    test: _common_pb2.ArtifactRef
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    seeds: _common_pb2.ArtifactRef
    config: _struct_pb2.Struct
    output_prefix: str
    request_id: str
    def __init__(self, task: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., test: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., seeds: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output_prefix: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CandidateScore(_message.Message):
    __slots__ = ("name", "metrics", "latency_p50_ms", "latency_p95_ms", "tokens_per_second", "malformed", "error")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    metrics: _containers.ScalarMap[str, float]
    latency_p50_ms: float
    latency_p95_ms: float
    tokens_per_second: float
    malformed: int
    error: str
    def __init__(self, name: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., tokens_per_second: _Optional[float] = ..., malformed: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class Comparison(_message.Message):
    __slots__ = ("a", "b", "metric", "delta", "low", "high", "n", "verdict")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    a: str
    b: str
    metric: str
    delta: float
    low: float
    high: float
    n: int
    verdict: str
    def __init__(self, a: _Optional[str] = ..., b: _Optional[str] = ..., metric: _Optional[str] = ..., delta: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., n: _Optional[int] = ..., verdict: _Optional[str] = ...) -> None: ...

class EvaluationResult(_message.Message):
    __slots__ = ("report_json", "report_markdown", "predictions", "plots", "scores", "primary_metric", "student_teacher_ratio", "comparisons", "failed_candidates", "ratio_note")
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    REPORT_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    PLOTS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_METRIC_FIELD_NUMBER: _ClassVar[int]
    STUDENT_TEACHER_RATIO_FIELD_NUMBER: _ClassVar[int]
    COMPARISONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RATIO_NOTE_FIELD_NUMBER: _ClassVar[int]
    report_json: _common_pb2.ArtifactRef
    report_markdown: _common_pb2.ArtifactRef
    predictions: _common_pb2.ArtifactRef
    plots: _containers.RepeatedCompositeFieldContainer[_common_pb2.ArtifactRef]
    scores: _containers.RepeatedCompositeFieldContainer[CandidateScore]
    primary_metric: str
    student_teacher_ratio: float
    comparisons: _containers.RepeatedCompositeFieldContainer[Comparison]
    failed_candidates: _containers.RepeatedScalarFieldContainer[str]
    ratio_note: str
    def __init__(self, report_json: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., report_markdown: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., predictions: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., plots: _Optional[_Iterable[_Union[_common_pb2.ArtifactRef, _Mapping]]] = ..., scores: _Optional[_Iterable[_Union[CandidateScore, _Mapping]]] = ..., primary_metric: _Optional[str] = ..., student_teacher_ratio: _Optional[float] = ..., comparisons: _Optional[_Iterable[_Union[Comparison, _Mapping]]] = ..., failed_candidates: _Optional[_Iterable[str]] = ..., ratio_note: _Optional[str] = ...) -> None: ...
