"""The pipeline's client edge (services/pipeline/workers.py): typed calls become the worker
services' protobuf requests field by field, and their results come back typed — nothing dropped,
enums named, optional intervals kept optional. The gRPC round trip itself runs in
tests/integration (the full pipeline against the real services)."""

from __future__ import annotations

import pytest
from distillery.v1 import common_pb2, evaluator_pb2, generator_pb2, serving_pb2, trainer_pb2, validator_pb2

from services.common.artifacts import Artifact
from services.common.convert import artifact_to_proto
from services.common.enums import CandidateKind, ModelFormat, Quantization
from services.common.errors import FailedPrecondition
from services.common.taskspec import TaskSpec
from services.pipeline import workers
from services.pipeline.calls import (
    CandidateCall,
    EvaluationCall,
    ExportCall,
    GenerationCall,
    LoadModelCall,
    ModelRef,
    TrainingCall,
    ValidationCall,
)

SPEC = TaskSpec(name="topics", type="classification", description="Classify a headline.", labels=["a", "b"])
SEEDS = Artifact("file:///store/seeds.jsonl", "ab" * 32, 10)
TEST = Artifact("file:///store/test.jsonl", "cd" * 32, 20)


def test_generation_request_carries_every_field() -> None:
    call = GenerationCall(task=SPEC, seeds=SEEDS, target_count=300, temperature=0.7, top_p=0.9, random_seed=7,
                          context=TEST, request_id="job:generate", output_prefix="jobs/x/generate")
    message = workers.generation_request(call)
    assert (message.task.name, message.seeds.uri, message.context.uri) == ("topics", SEEDS.uri, TEST.uri)
    assert (message.target_count, message.temperature, message.top_p, message.random_seed) == (300, 0.7, 0.9, 7)
    assert (message.request_id, message.output_prefix) == ("job:generate", "jobs/x/generate")
    assert not workers.generation_request(GenerationCall(SPEC, SEEDS, 1, 1.0, 1.0, 0)).HasField("context")


def test_training_and_validation_requests() -> None:
    training = workers.training_request(TrainingCall(task=SPEC, train=TEST, student=ModelRef("smollm2-135m-instruct"),
                                                     config={"epochs": 3, "lora": {"r": 8}}, seeds=SEEDS))
    assert training.student.uri == "smollm2-135m-instruct" and training.student.format == 0
    assert training.seeds.uri == SEEDS.uri and dict(training.config)["epochs"] == 3
    assert not workers.training_request(TrainingCall(SPEC, SEEDS, ModelRef("m"), {})).HasField("seeds")
    validation = workers.validation_request(ValidationCall(SPEC, TEST, SEEDS, TEST, {"near_duplicate": {"threshold": 0.8}}))
    assert validation.examples.uri == TEST.uri and validation.config["near_duplicate"]["threshold"] == 0.8


def test_evaluation_and_export_requests_name_their_enums() -> None:
    evaluation = workers.evaluation_request(EvaluationCall(
        task=SPEC, test=TEST, seeds=SEEDS, config={},
        candidates=[CandidateCall("teacher", CandidateKind.TEACHER, ModelRef("gemma3-270m")),
                    CandidateCall("student", CandidateKind.STUDENT, ModelRef("/m", ModelFormat.HF))]))
    assert [(c.name, c.kind, c.model.format) for c in evaluation.candidates] == [
        ("teacher", evaluator_pb2.CANDIDATE_KIND_TEACHER, 0),
        ("student", evaluator_pb2.CANDIDATE_KIND_STUDENT, common_pb2.MODEL_FORMAT_HF)]
    export = workers.export_request(ExportCall(task=SPEC, model=ModelRef("/m", ModelFormat.HF),
                                               quantizations=[Quantization.NONE, Quantization.INT8], min_parity=0.9,
                                               model_name="topics", model_version="v1",
                                               adapter=ModelRef("/a", ModelFormat.PEFT_ADAPTER), parity_inputs=SEEDS))
    assert list(export.quantizations) == [serving_pb2.QUANTIZATION_NONE, serving_pb2.QUANTIZATION_INT8]
    assert export.adapter.format == common_pb2.MODEL_FORMAT_PEFT_ADAPTER and export.parity_inputs.uri == SEEDS.uri
    load = workers.load_model_request(LoadModelCall("topics", "v1", SEEDS, Quantization.INT8, SPEC))
    assert load.quantization == serving_pb2.QUANTIZATION_INT8 and load.bundle.uri == SEEDS.uri


def test_outcomes_are_typed_and_complete() -> None:
    generated = workers.generation_outcome(generator_pb2.GenerationResult(
        examples=artifact_to_proto(SEEDS), generated=300, rejected_count=2, label_source="target",
        teacher_seed_accuracy=0.3, teacher_seed_count=30, shortfall=""))
    assert generated.examples == SEEDS and generated.rejected is None and generated.generated == 300
    assert (generated.label_source, generated.teacher_seed_count) == ("target", 30)
    validated = workers.validation_outcome(validator_pb2.ValidationResult(
        accepted=artifact_to_proto(TEST), read=10, accepted_count=8, rejected_by_reason={"duplicate": 2}))
    assert validated.accepted == TEST and validated.rejected_count == 0 and validated.rejected_by_reason == {"duplicate": 2}
    trained = workers.training_outcome(trainer_pb2.TrainingResult(merged_artifact=artifact_to_proto(TEST), steps=44))
    assert trained.merged == TEST and trained.adapter is None and trained.steps == 44


def test_evaluation_outcome_keeps_missing_intervals_missing() -> None:
    result = evaluator_pb2.EvaluationResult(
        scores=[evaluator_pb2.CandidateScore(name="student", metrics={"accuracy": 0.6}, latency_p50_ms=12.0),
                evaluator_pb2.CandidateScore(name="teacher", error="generator down")],
        comparisons=[evaluator_pb2.Comparison(a="student", b="teacher", metric="accuracy", delta=0.0, low=-0.1,
                                              high=0.1, n=300),
                     evaluator_pb2.Comparison(a="student", b="seed-only-student", metric="accuracy", n=0)],
        primary_metric="accuracy", student_teacher_ratio=1.5, failed_candidates=["teacher"])
    outcome = workers.evaluation_outcome(result)
    assert outcome.scores[0].metrics == {"accuracy": 0.6} and outcome.scores[1].error == "generator down"
    assert outcome.comparisons[0].delta == 0.0  # a zero difference is a difference, not "none"
    assert outcome.comparisons[1].delta is None and "delta" not in outcome.comparisons[1].to_dict()
    assert outcome.scores[1].to_dict() == {"name": "teacher", "metrics": {}, "latency_p50_ms": 0.0,
                                           "latency_p95_ms": 0.0, "tokens_per_second": 0.0, "malformed": 0,
                                           "error": "generator down"}
    assert outcome.failed_candidates == ["teacher"] and outcome.student_teacher_ratio == 1.5


def test_export_outcome_names_quantizations_and_refuses_unspecified() -> None:
    result = serving_pb2.ExportResult(variants=[
        serving_pb2.ExportVariant(quantization=serving_pb2.QUANTIZATION_INT8, parity=0.97, accepted=True)],
        bundle=artifact_to_proto(SEEDS), model_name="topics")
    outcome = workers.export_outcome(result)
    assert outcome.variants[0].quantization == Quantization.INT8 and outcome.variants[0].to_dict()["accepted"]
    assert outcome.bundle == SEEDS and outcome.model_card is None
    with pytest.raises(FailedPrecondition, match="QUANTIZATION_UNSPECIFIED"):
        workers.export_outcome(serving_pb2.ExportResult(variants=[serving_pb2.ExportVariant()]))
