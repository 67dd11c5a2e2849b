"""The trainer service over real gRPC: LoRA-train the default student on a small real sentiment
set until the eval loss drops, and the merged checkpoint answers held-out reviews better than the
base model. Bad requests fail at once with INVALID_ARGUMENT."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from distillery.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from safetensors import safe_open

from services.common.client import OperationsClient, open_channel, operation_metadata
from services.common.config import ServiceConfig
from services.common.convert import struct_from, task_to_proto
from services.common.runtime import start_service
from services.trainer.servicer import RESULT_TYPES, build
from tests.helpers.services import free_port
from tests.helpers.trainer_data import HELD_OUT, SPEC, classify, student_path, write_train


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    home = tmp_path_factory.mktemp("trainer-home")
    cache = None if os.environ.get("DISTILLERY_TEST_STUDENT_DIR") else request.getfixturevalue("model_cache")
    override = os.environ.get("DISTILLERY_TEST_STUDENT_DIR")
    config = ServiceConfig(service="trainer", port=free_port(), metrics_port=-1, home=home, model_cache=cache,
                           model_roots=(Path(override).resolve(),) if override else ())
    server, ctx = start_service(config, build, RESULT_TYPES)
    try:
        yield ctx, open_channel(config.address), student_path(cache)
    finally:
        server.stop(0)


def _request(ctx, student: Path, config: dict, request_id: str) -> trainer_pb2.StartTrainingRequest:
    train = ctx.store.put_file("inputs/accepted.jsonl", write_train(ctx.config.home / "accepted.jsonl"))
    return trainer_pb2.StartTrainingRequest(
        task=task_to_proto(SPEC), train=common_pb2.ArtifactRef(uri=train.uri, sha256=train.sha256, size=train.size),
        student=common_pb2.ModelRef(uri=str(student)), config=struct_from(config), request_id=request_id,
        output_prefix=f"runs/{request_id}")


def test_bad_requests_fail_fast(trainer) -> None:
    ctx, channel, student = trainer
    stub = trainer_pb2_grpc.TrainerServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.StartTraining(_request(ctx, student, {"lora_rank": 8}, "bad-key"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown training setting training.lora_rank" in info.value.details()
    bad = _request(ctx, student, {}, "no-train")
    bad.ClearField("train")
    with pytest.raises(grpc.RpcError) as info:
        stub.StartTraining(bad)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "train.uri" in info.value.details()


@pytest.mark.slow
def test_lora_training_improves_the_student(trainer) -> None:
    ctx, channel, student = trainer
    stub = trainer_pb2_grpc.TrainerServiceStub(channel)
    config = {"epochs": 3, "batch_size": 8, "learning_rate": 5e-4, "max_seq_len": 96, "eval_fraction": 0.1,
              "checkpoint_every_steps": 10, "seed": 1}
    operation = stub.StartTraining(_request(ctx, student, config, "sentiment"))
    ops = OperationsClient(channel)
    done = ops.wait(operation.name, timeout=3600, poll=5)
    assert done.done and not done.HasField("error"), done.error.message
    result = OperationsClient.result(done, trainer_pb2.TrainingResult)
    meta = operation_metadata(done)
    assert {"loss", "learning_rate", "tokens_per_second", "eta_seconds", "eval_loss"} <= set(meta.counters)
    assert result.steps == meta.total > 0 and result.device.startswith("cpu float32")

    metrics = ctx.store.read_json(result.metrics.uri)
    assert metrics["final_eval_loss"] < metrics["initial_eval_loss"]
    assert result.final_eval_loss == pytest.approx(metrics["final_eval_loss"])
    assert result.adapter.format == common_pb2.MODEL_FORMAT_PEFT_ADAPTER

    adapter = ctx.store.local_path(result.adapter_artifact.uri)
    merged = ctx.store.local_path(result.merged_artifact.uri)
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    assert (merged / "chat_template.jinja").is_file() or "chat_template" in (merged / "tokenizer_config.json").read_text()
    assert not list(merged.glob("*.bin")) and list(merged.glob("*.safetensors"))
    with safe_open(str(merged / "model.safetensors"), "pt") as handle:
        assert not any("lora" in key for key in handle.keys())

    texts = [text for text, _ in HELD_OUT]
    truth = [label for _, label in HELD_OUT]
    base_correct = sum(a == t for a, t in zip(classify(student, texts), truth))
    tuned_correct = sum(a == t for a, t in zip(classify(merged, texts), truth))
    assert tuned_correct > base_correct, (base_correct, tuned_correct)
    assert tuned_correct >= 8, tuned_correct
