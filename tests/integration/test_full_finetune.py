"""`training.full_finetune: true` end to end through the real services: the trainer fine-tunes every
weight (no adapter is written), the evaluator scores the merged checkpoint from the store, the
serving service exports it without an adapter, loads it and answers. A tiny real Llama (the
serving tests' student base) keeps it to seconds."""

from __future__ import annotations

import json

import pytest
from distillery.v1 import (
    common_pb2,
    evaluator_pb2,
    evaluator_pb2_grpc,
    serving_pb2,
    serving_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)

from services.common.client import OperationsClient, open_channel
from services.common.config import ServiceConfig
from services.common.convert import artifact_to_proto, struct_from, task_to_proto
from services.common.runtime import start_service
from services.serving.testing import SENTIMENT, SENTIMENT_EXAMPLES, make_tiny_base, render_prompt_text
from tests.helpers.services import free_port


def _jsonl(rows: list[tuple[str, str]]) -> bytes:
    return "".join(json.dumps({"input": text, "output": label}) + "\n" for text, label in rows).encode()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    from services.evaluator.servicer import RESULT_TYPES as EVALUATOR_RESULTS
    from services.evaluator.servicer import build as build_evaluator
    from services.serving.servicer import RESULT_TYPES as SERVING_RESULTS
    from services.serving.servicer import build as build_serving
    from services.trainer.servicer import RESULT_TYPES as TRAINER_RESULTS
    from services.trainer.servicer import build as build_trainer

    root = tmp_path_factory.mktemp("full-finetune")
    corpus = [render_prompt_text(SENTIMENT, text) + " " + label for text, label in SENTIMENT_EXAMPLES]
    base = make_tiny_base(root / "models" / "tiny-base", corpus)
    store_url = (root / "store").as_uri()
    servers, channels = [], {}
    for name, build, results in (("trainer", build_trainer, TRAINER_RESULTS),
                                 ("evaluator", build_evaluator, EVALUATOR_RESULTS),
                                 ("serving", lambda ctx: build_serving(ctx, http_port=-1), SERVING_RESULTS)):
        config = ServiceConfig(service=name, port=free_port(), metrics_port=-1, home=root / name, store_url=store_url,
                               model_cache=root / "cache", model_roots=((root / "models").resolve(),), device="cpu")
        server, ctx = start_service(config, build, results)
        servers.append(server)
        channels[name] = open_channel(config.address)
    try:
        yield channels, ctx.store, base
    finally:
        for server in servers:
            server.stop(0)


def test_full_finetune_trains_evaluates_exports_and_serves(platform) -> None:
    channels, store, base = platform
    train = store.put_bytes("inputs/train.jsonl", _jsonl(SENTIMENT_EXAMPLES * 4))
    test = store.put_bytes("inputs/test.jsonl", _jsonl(SENTIMENT_EXAMPLES))

    # --- train: every weight, no adapter ------------------------------------------------------
    operation = trainer_pb2_grpc.TrainerServiceStub(channels["trainer"]).StartTraining(
        trainer_pb2.StartTrainingRequest(
            task=task_to_proto(SENTIMENT), train=artifact_to_proto(train), student=common_pb2.ModelRef(uri=str(base)),
            config=struct_from({"full_finetune": True, "epochs": 12, "batch_size": 4, "learning_rate": 2e-3,
                                "max_seq_len": 128, "eval_fraction": 0, "seed": 1}),
            output_prefix="runs/full"), timeout=30)
    done = OperationsClient(channels["trainer"]).wait(operation.name, timeout=900, poll=1)
    assert not done.HasField("error"), done.error.message
    trained = OperationsClient.result(done, trainer_pb2.TrainingResult)
    assert not trained.adapter.uri and not trained.adapter_artifact.uri  # full fine-tune: no adapter
    assert trained.steps > 0 and trained.final_train_loss > 0
    merged = store.local_path(trained.merged_artifact.uri)
    assert list(merged.glob("*.safetensors")) and not list(merged.glob("adapter_*"))

    # --- evaluate the merged checkpoint from the store beside the untouched base ----------------
    candidates = [evaluator_pb2.Candidate(name="student", kind=evaluator_pb2.CANDIDATE_KIND_STUDENT,
                                          model=common_pb2.ModelRef(uri=trained.merged_artifact.uri)),
                  evaluator_pb2.Candidate(name="base-student", kind=evaluator_pb2.CANDIDATE_KIND_STUDENT,
                                          model=common_pb2.ModelRef(uri=str(base)))]
    operation = evaluator_pb2_grpc.EvaluatorServiceStub(channels["evaluator"]).StartEvaluation(
        evaluator_pb2.StartEvaluationRequest(task=task_to_proto(SENTIMENT), test=artifact_to_proto(test),
                                             candidates=candidates), timeout=30)
    done = OperationsClient(channels["evaluator"]).wait(operation.name, timeout=900, poll=1)
    assert not done.HasField("error"), done.error.message
    scores = {s.name: s for s in OperationsClient.result(done, evaluator_pb2.EvaluationResult).scores}
    assert not scores["student"].error and not scores["base-student"].error
    # The training rows are the test rows here: a fully fine-tuned student has learnt them.
    assert scores["student"].metrics["accuracy"] > scores["base-student"].metrics["accuracy"], \
        (trained.steps, trained.final_train_loss, scores["student"].metrics, scores["base-student"].metrics)

    # --- export without an adapter, load, answer ------------------------------------------------
    serving = serving_pb2_grpc.ServingServiceStub(channels["serving"])
    operation = serving.StartExport(serving_pb2.StartExportRequest(
        task=task_to_proto(SENTIMENT), model=common_pb2.ModelRef(uri=trained.merged_artifact.uri),
        model_name="sentiment-full", model_version="1"), timeout=30)
    done = OperationsClient(channels["serving"]).wait(operation.name, timeout=900, poll=1)
    assert not done.HasField("error"), done.error.message
    exported = OperationsClient.result(done, serving_pb2.ExportResult)
    bundle = store.local_path(exported.bundle.uri)
    assert (bundle / "onnx" / "model.onnx").is_file() and not (bundle / "adapter").exists()
    reply = serving.Predict(serving_pb2.PredictRequest(model_name="sentiment-full",
                                                       inputs=[text for text, _ in SENTIMENT_EXAMPLES[:4]]), timeout=60)
    assert [p.output for p in reply.predictions] and all(p.output in SENTIMENT.labels for p in reply.predictions)
