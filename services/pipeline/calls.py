"""What the pipeline asks of each worker service and what it gets back, as typed objects.

The orchestrator builds these and reads these; ``workers.py`` is the edge that turns them into
the services' protobuf requests and their results back into these (strictly: a field the
orchestrator reads is a Python attribute, so a misspelt one fails at once instead of reading as
missing). Stage state persists the results' artifacts and summaries as plain JSON, so nothing
here is pickled or needs a schema of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.artifacts import Artifact
from services.common.enums import CandidateKind, ModelFormat, Quantization
from services.common.taskspec import Example, TaskSpec


@dataclass
class ModelRef:
    """A model the request names: a catalog name, a local directory or an artifact URI."""

    uri: str
    format: ModelFormat | None = None  # None: the service decides (catalog names, HF directories)


@dataclass
class Progress:
    """One progress report of a worker operation (its OperationMetadata)."""

    stage: str = ""
    done: int = 0
    total: int = 0
    unit: str = ""
    counters: dict[str, float] = field(default_factory=dict)


# ----- requests -------------------------------------------------------------------------------
# ``request_id`` and ``output_prefix`` are the stage's own (the orchestrator sets them per stage
# when it runs the call), so a resumed stage repeats the same idempotent request.
@dataclass
class GenerationCall:
    task: TaskSpec
    seeds: Artifact
    target_count: int
    temperature: float
    top_p: float
    random_seed: int
    context: Artifact | None = None
    index_offset: int = 0  # a shard's first candidate index
    request_id: str = ""
    output_prefix: str = ""


@dataclass
class ValidationCall:
    task: TaskSpec
    examples: Artifact
    seeds: Artifact
    test: Artifact
    config: dict[str, Any]
    request_id: str = ""
    output_prefix: str = ""


@dataclass
class TrainingCall:
    task: TaskSpec
    train: Artifact
    student: ModelRef
    config: dict[str, Any]
    seeds: Artifact | None = None  # mixed into the training rows (the trained student); None for the seed-only one
    request_id: str = ""
    output_prefix: str = ""


@dataclass
class CandidateCall:
    """One model the evaluator scores."""

    name: str
    kind: CandidateKind
    model: ModelRef


@dataclass
class EvaluationCall:
    task: TaskSpec
    test: Artifact
    seeds: Artifact
    candidates: list[CandidateCall]
    config: dict[str, Any]
    request_id: str = ""
    output_prefix: str = ""


@dataclass
class ExportCall:
    task: TaskSpec
    model: ModelRef
    quantizations: list[Quantization]
    min_parity: float
    model_name: str
    model_version: str
    adapter: ModelRef | None = None  # none after full fine-tuning
    parity_inputs: Artifact | None = None  # the task's own inputs for the parity check
    gguf: list[str] = field(default_factory=list)  # GGUF files for llama.cpp / Ollama (q8_0, q4_k_m)
    request_id: str = ""
    output_prefix: str = ""


@dataclass
class LoadModelCall:
    name: str
    version: str
    bundle: Artifact
    quantization: Quantization
    task: TaskSpec


@dataclass
class LabelCall:
    """The teacher answers task inputs (the generator's Label RPC), few-shot from ``seeds``."""

    task: TaskSpec
    inputs: list[Example]
    seeds: Artifact | None = None
    temperature: float = 0.0
    random_seed: int = 0


StageCall = GenerationCall | ValidationCall | TrainingCall | EvaluationCall | ExportCall


# ----- results --------------------------------------------------------------------------------
@dataclass
class GenerationOutcome:
    examples: Artifact | None = None
    rejected: Artifact | None = None
    generated: int = 0
    rejected_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float = 0.0
    seconds: float = 0.0
    teacher: str = ""
    teacher_seed_accuracy: float = 0.0
    teacher_seed_count: int = 0
    label_source: str = ""
    label_source_reason: str = ""
    shortfall: str = ""


@dataclass
class ValidationOutcome:
    accepted: Artifact | None = None
    rejected: Artifact | None = None
    report: Artifact | None = None
    read: int = 0
    accepted_count: int = 0
    rejected_count: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class TrainingOutcome:
    adapter: Artifact | None = None
    merged: Artifact | None = None
    metrics: Artifact | None = None
    steps: int = 0
    final_train_loss: float = 0.0
    final_eval_loss: float = 0.0
    seconds: float = 0.0
    device: str = ""


@dataclass
class CandidateScore:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    tokens_per_second: float = 0.0
    malformed: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The form stage summaries (GetJob, state.json) keep."""
        data: dict[str, Any] = {"name": self.name, "metrics": dict(self.metrics),
                                "latency_p50_ms": self.latency_p50_ms, "latency_p95_ms": self.latency_p95_ms,
                                "tokens_per_second": self.tokens_per_second, "malformed": self.malformed}
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class Comparison:
    """A paired difference ``a − b`` of one metric with its 95% interval (None when there was
    nothing to compare)."""

    a: str
    b: str
    metric: str
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"a": self.a, "b": self.b, "metric": self.metric, "n": self.n, "verdict": self.verdict}
        data.update({k: v for k, v in (("delta", self.delta), ("low", self.low), ("high", self.high)) if v is not None})
        return data


@dataclass
class EvaluationOutcome:
    report_json: Artifact | None = None
    report_markdown: Artifact | None = None
    predictions: Artifact | None = None
    scores: list[CandidateScore] = field(default_factory=list)
    primary_metric: str = ""
    student_teacher_ratio: float = 0.0
    comparisons: list[Comparison] = field(default_factory=list)
    failed_candidates: list[str] = field(default_factory=list)


@dataclass
class ExportedVariant:
    quantization: Quantization
    onnx: Artifact | None = None
    parity: float = 0.0
    accepted: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"quantization": str(self.quantization), "parity": self.parity,
                                "accepted": self.accepted, "reason": self.reason}
        if self.onnx is not None:
            data["onnx"] = self.onnx.to_dict()
        return data


@dataclass
class ExportOutcome:
    variants: list[ExportedVariant] = field(default_factory=list)
    bundle: Artifact | None = None
    model_card: Artifact | None = None
    model_name: str = ""
    model_version: str = ""
    gguf: list[GgufFile] = field(default_factory=list)


@dataclass
class GgufFile:
    """A GGUF file in the bundle (its bundle-relative path), or why it could not be made."""

    quantization: str
    path: str = ""
    size_bytes: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"quantization": self.quantization, "path": self.path, "size_bytes": self.size_bytes,
                "error": self.error}


@dataclass
class LoadedModel:
    name: str
    version: str
    ready: bool = False
    quantization: str = ""
    uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "ready": self.ready, "quantization": self.quantization,
                "uri": self.uri}


StageOutcome = GenerationOutcome | ValidationOutcome | TrainingOutcome | EvaluationOutcome | ExportOutcome
