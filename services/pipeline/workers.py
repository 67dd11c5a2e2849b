"""The pipeline's view of the five worker services, as a small interface (so the orchestrator
stays grpc-free and testable) and its gRPC implementation — the pipeline's client edge: the typed
calls of ``calls.py`` become the services' protobuf requests here, and their results come back as
typed outcomes (field by field, so nothing is dropped or misnamed on the way)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from distillery.v1 import (
    common_pb2,
    evaluator_pb2,
    evaluator_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    serving_pb2,
    serving_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
    validator_pb2,
    validator_pb2_grpc,
)
from google.longrunning import operations_pb2
from google.protobuf.message import Message

from services.common.artifacts import Artifact
from services.common.client import OperationsClient, open_channel, operation_metadata
from services.common.config import ClientSecurity
from services.common.convert import artifact_from_proto, artifact_to_proto, struct_from, task_to_proto
from services.common.enums import Quantization
from services.common.errors import Cancelled, FailedPrecondition, Unavailable
from services.pipeline.calls import (
    CandidateScore,
    Comparison,
    EvaluationCall,
    EvaluationOutcome,
    ExportCall,
    ExportedVariant,
    ExportOutcome,
    GenerationCall,
    GenerationOutcome,
    GgufFile,
    LabelCall,
    LoadedModel,
    LoadModelCall,
    ModelRef,
    Progress,
    StageCall,
    StageOutcome,
    TrainingCall,
    TrainingOutcome,
    ValidationCall,
    ValidationOutcome,
)

ProgressFn = Callable[[Progress], None]
LABEL_BATCH = 256  # inputs per Label call: one call stays well inside the message size limit
CancelledFn = Callable[[], bool]


class Workers(Protocol):
    def run(self, stage: str, call: StageCall, on_progress: ProgressFn,
            cancelled: CancelledFn) -> tuple[str, StageOutcome]: ...

    def load_model(self, call: LoadModelCall) -> LoadedModel: ...

    def label(self, call: LabelCall) -> list[str]: ...


# ----- typed calls → protobuf requests ----------------------------------------------------------
def _model_ref(ref: ModelRef | None) -> common_pb2.ModelRef:
    if ref is None:
        return common_pb2.ModelRef()
    return common_pb2.ModelRef(uri=ref.uri, format=common_pb2.ModelFormat.Value(ref.format) if ref.format else 0)


def _quantization(value: int, where: str) -> Quantization:
    name = serving_pb2.Quantization.Name(value)
    try:
        return Quantization(name)
    except ValueError:
        raise FailedPrecondition(f"{where}: the serving service answered quantization {name}") from None


def _artifact(artifact: Artifact | None) -> common_pb2.ArtifactRef | None:
    return artifact_to_proto(artifact) if artifact is not None else None


def generation_request(call: GenerationCall) -> generator_pb2.StartGenerationRequest:
    return generator_pb2.StartGenerationRequest(
        task=task_to_proto(call.task), seeds=_artifact(call.seeds), context=_artifact(call.context),
        target_count=call.target_count, temperature=call.temperature, top_p=call.top_p,
        random_seed=call.random_seed, output_prefix=call.output_prefix, request_id=call.request_id,
        index_offset=call.index_offset)


def validation_request(call: ValidationCall) -> validator_pb2.StartValidationRequest:
    return validator_pb2.StartValidationRequest(
        task=task_to_proto(call.task), examples=_artifact(call.examples), seeds=_artifact(call.seeds),
        test=_artifact(call.test), config=struct_from(call.config), output_prefix=call.output_prefix,
        request_id=call.request_id)


def training_request(call: TrainingCall) -> trainer_pb2.StartTrainingRequest:
    return trainer_pb2.StartTrainingRequest(
        task=task_to_proto(call.task), train=_artifact(call.train), student=_model_ref(call.student),
        config=struct_from(call.config), seeds=_artifact(call.seeds), output_prefix=call.output_prefix,
        request_id=call.request_id)


def evaluation_request(call: EvaluationCall) -> evaluator_pb2.StartEvaluationRequest:
    candidates = [evaluator_pb2.Candidate(name=c.name, kind=evaluator_pb2.CandidateKind.Value(c.kind), model=_model_ref(c.model)) for c in call.candidates]
    return evaluator_pb2.StartEvaluationRequest(
        task=task_to_proto(call.task), test=_artifact(call.test), seeds=_artifact(call.seeds), candidates=candidates,
        config=struct_from(call.config), output_prefix=call.output_prefix, request_id=call.request_id)


def export_request(call: ExportCall) -> serving_pb2.StartExportRequest:
    return serving_pb2.StartExportRequest(
        task=task_to_proto(call.task), model=_model_ref(call.model),
        adapter=_model_ref(call.adapter) if call.adapter else None, quantizations=[serving_pb2.Quantization.Value(q) for q in call.quantizations],
        min_parity=call.min_parity, model_name=call.model_name, model_version=call.model_version,
        parity_inputs=_artifact(call.parity_inputs), gguf=list(call.gguf), output_prefix=call.output_prefix,
        request_id=call.request_id)


def load_model_request(call: LoadModelCall) -> serving_pb2.LoadModelRequest:
    return serving_pb2.LoadModelRequest(name=call.name, version=call.version, bundle=_artifact(call.bundle),
                                        quantization=serving_pb2.Quantization.Value(call.quantization),
                                        task=task_to_proto(call.task))


# ----- protobuf results → typed outcomes --------------------------------------------------------
def label_request(call: LabelCall, inputs: list[Any]) -> generator_pb2.LabelRequest:
    return generator_pb2.LabelRequest(
        task=task_to_proto(call.task), seeds=_artifact(call.seeds), temperature=call.temperature,
        random_seed=call.random_seed,
        examples=[common_pb2.Example(id=e.id, input=e.input, context=e.context) for e in inputs])


def generation_outcome(r: generator_pb2.GenerationResult) -> GenerationOutcome:
    return GenerationOutcome(
        examples=artifact_from_proto(r.examples), rejected=artifact_from_proto(r.rejected), generated=r.generated,
        rejected_count=r.rejected_count, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
        estimated_cost_usd=r.estimated_cost_usd, seconds=r.seconds, teacher=r.teacher,
        teacher_seed_accuracy=r.teacher_seed_accuracy, teacher_seed_count=r.teacher_seed_count,
        label_source=r.label_source, label_source_reason=r.label_source_reason, shortfall=r.shortfall)


def validation_outcome(r: validator_pb2.ValidationResult) -> ValidationOutcome:
    return ValidationOutcome(
        accepted=artifact_from_proto(r.accepted), rejected=artifact_from_proto(r.rejected),
        report=artifact_from_proto(r.report), read=r.read, accepted_count=r.accepted_count,
        rejected_count=r.rejected_count, rejected_by_reason=dict(r.rejected_by_reason))


def training_outcome(r: trainer_pb2.TrainingResult) -> TrainingOutcome:
    return TrainingOutcome(
        adapter=artifact_from_proto(r.adapter_artifact), merged=artifact_from_proto(r.merged_artifact),
        metrics=artifact_from_proto(r.metrics), steps=r.steps, final_train_loss=r.final_train_loss,
        final_eval_loss=r.final_eval_loss, seconds=r.seconds, device=r.device)


def evaluation_outcome(r: evaluator_pb2.EvaluationResult) -> EvaluationOutcome:
    scores = [CandidateScore(name=s.name, metrics=dict(s.metrics), latency_p50_ms=s.latency_p50_ms,
                             latency_p95_ms=s.latency_p95_ms, tokens_per_second=s.tokens_per_second,
                             malformed=s.malformed, error=s.error) for s in r.scores]
    comparisons = [Comparison(a=c.a, b=c.b, metric=c.metric, n=c.n, verdict=c.verdict,
                              delta=c.delta if c.HasField("delta") else None,
                              low=c.low if c.HasField("low") else None,
                              high=c.high if c.HasField("high") else None) for c in r.comparisons]
    return EvaluationOutcome(
        report_json=artifact_from_proto(r.report_json), report_markdown=artifact_from_proto(r.report_markdown),
        predictions=artifact_from_proto(r.predictions), scores=scores, primary_metric=r.primary_metric,
        student_teacher_ratio=r.student_teacher_ratio, comparisons=comparisons,
        failed_candidates=list(r.failed_candidates))


def export_outcome(r: serving_pb2.ExportResult) -> ExportOutcome:
    variants = [ExportedVariant(quantization=_quantization(v.quantization, "export variant"),
                                onnx=artifact_from_proto(v.onnx), parity=v.parity, accepted=v.accepted,
                                reason=v.reason) for v in r.variants]
    return ExportOutcome(variants=variants, bundle=artifact_from_proto(r.bundle),
                         model_card=artifact_from_proto(r.model_card), model_name=r.model_name,
                         model_version=r.model_version,
                         gguf=[GgufFile(quantization=g.quantization, path=g.path, size_bytes=g.size_bytes, error=g.error)
                               for g in r.gguf])


def loaded_model(r: serving_pb2.LoadModelResponse) -> LoadedModel:
    m = r.model
    return LoadedModel(name=m.name, version=m.version, ready=m.ready,
                       quantization=serving_pb2.Quantization.Name(m.quantization), uri=m.uri)


def progress_from(meta: common_pb2.OperationMetadata) -> Progress:
    return Progress(stage=meta.stage, done=meta.done, total=meta.total, unit=meta.unit, counters=dict(meta.counters))


@dataclass
class _Rpc:
    service: str
    start: Callable[[Any], Callable[..., operations_pb2.Operation]]
    to_request: Callable[[Any], Message]
    result_type: type[Message]
    to_outcome: Callable[[Any], StageOutcome]


_START_RPCS: dict[type, _Rpc] = {
    GenerationCall: _Rpc("generator", lambda ch: generator_pb2_grpc.GeneratorServiceStub(ch).StartGeneration,
                         generation_request, generator_pb2.GenerationResult, generation_outcome),
    ValidationCall: _Rpc("validator", lambda ch: validator_pb2_grpc.ValidatorServiceStub(ch).StartValidation,
                         validation_request, validator_pb2.ValidationResult, validation_outcome),
    TrainingCall: _Rpc("trainer", lambda ch: trainer_pb2_grpc.TrainerServiceStub(ch).StartTraining,
                       training_request, trainer_pb2.TrainingResult, training_outcome),
    EvaluationCall: _Rpc("evaluator", lambda ch: evaluator_pb2_grpc.EvaluatorServiceStub(ch).StartEvaluation,
                         evaluation_request, evaluator_pb2.EvaluationResult, evaluation_outcome),
    ExportCall: _Rpc("serving", lambda ch: serving_pb2_grpc.ServingServiceStub(ch).StartExport,
                     export_request, serving_pb2.ExportResult, export_outcome),
}


class GrpcWorkers:
    """Starts worker operations over gRPC and follows them to the end."""

    def __init__(self, peers: dict[str, str], security: ClientSecurity | None = None,
                 poll_seconds: float = 1.0) -> None:
        self.peers = peers
        self.security = security or ClientSecurity()
        self.poll_seconds = poll_seconds
        self._channels: dict[str, grpc.Channel] = {}

    def channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            self._channels[service] = open_channel(self.peers[service], security=self.security)
        return self._channels[service]

    def run(self, stage: str, call: StageCall, on_progress: ProgressFn,
            cancelled: CancelledFn) -> tuple[str, StageOutcome]:
        rpc = _START_RPCS[type(call)]
        service = rpc.service
        message = rpc.to_request(call)
        channel = self.channel(service)
        operation = self._retry(service, lambda: rpc.start(channel)(message, timeout=60))
        ops = OperationsClient(channel)
        name = operation.name
        while not operation.done:
            if cancelled():
                self._retry(service, lambda: ops.cancel(name))
                raise Cancelled(f"stage {stage} cancelled")
            operation = self._retry(service, lambda: ops.wait(name, timeout=self.poll_seconds, poll=self.poll_seconds))
            on_progress(progress_from(operation_metadata(operation)))
        if operation.HasField("error") and operation.error.code != 0:
            code = grpc.StatusCode.UNKNOWN
            for candidate in grpc.StatusCode:
                if candidate.value[0] == operation.error.code:
                    code = candidate
            raise FailedPrecondition(f"stage {stage} failed on the {service} ({code.name}): {operation.error.message}")
        return name, rpc.to_outcome(OperationsClient.result(operation, rpc.result_type))

    def _retry(self, service: str, call: Callable[[], Any], attempts: int = 60) -> Any:
        """Worker restarts are expected (that is what resuming is for): retry UNAVAILABLE."""
        for attempt in range(attempts):
            try:
                return call()
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        or attempt == attempts - 1:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        raise Unavailable(f"the {service} service at {self.peers[service]} is not reachable; "
                                          "start it (`distillery up`) and retry the job") from None
                    raise FailedPrecondition(f"{service}: {exc.code().name}: {exc.details()}") from None
                time.sleep(min(5.0, 0.5 * (attempt + 1)))
        raise AssertionError("unreachable")

    def load_model(self, call: LoadModelCall) -> LoadedModel:
        stub = serving_pb2_grpc.ServingServiceStub(self.channel("serving"))
        message = load_model_request(call)
        return loaded_model(self._retry("serving", lambda: stub.LoadModel(message, timeout=600)))

    def label(self, call: LabelCall) -> list[str]:
        """The teacher's answer to every input, in order (LABEL_BATCH inputs per Label call)."""
        stub = generator_pb2_grpc.GeneratorServiceStub(self.channel("generator"))
        answers: list[str] = []
        for start in range(0, len(call.inputs), LABEL_BATCH):
            message = label_request(call, call.inputs[start:start + LABEL_BATCH])
            reply = self._retry("generator", lambda message=message: stub.Label(message, timeout=1800))
            answers += [completion.text for completion in reply.completions]
        return answers


__all__ = ["Workers", "GrpcWorkers"]
