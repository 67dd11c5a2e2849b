"""A corpus of bad inputs against real service processes (auth on): each gets its own specific
error, nothing is silently lost, and the service stays up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from distillery.v1 import (
    common_pb2,
    evaluator_pb2,
    evaluator_pb2_grpc,
    serving_pb2,
    serving_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
    validator_pb2,
    validator_pb2_grpc,
)

from services.common.artifacts import ArtifactStore
from services.common.client import OperationsClient, health_status, open_channel
from services.common.convert import artifact_to_proto, task_to_proto
from services.common.taskspec import TaskSpec
from tests.helpers.services import start_service_process

TOKEN = "reliability-token"
REPO = Path(__file__).resolve().parents[2]
SPEC = TaskSpec(name="sentiment", type="classification", description="Sentiment of a short review.",
                labels=["positive", "negative"])


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):
    root = tmp_path_factory.mktemp("reliability")
    env = {"DISTILLERY_AUTH_TOKEN": TOKEN, "DISTILLERY_STORE_URL": (root / "store").as_uri(),
           "DISTILLERY_MODEL_CACHE": str(model_cache), "DISTILLERY_MAX_MESSAGE_BYTES": str(16 * 1024 * 1024),
           "DISTILLERY_MODEL_ROOTS": str(root / "user-models")}
    (root / "user-models").mkdir()
    handles = {}
    try:
        for name in ("validator", "trainer", "serving", "evaluator"):
            handles[name] = start_service_process(name, None, root / name, extra_env=env, timeout=180)
        yield handles, ArtifactStore(env["DISTILLERY_STORE_URL"])
    finally:
        for handle in handles.values():
            handle.stop()


def _user_models(handles) -> Path:
    """The fixture's DISTILLERY_MODEL_ROOTS directory."""
    return handles["trainer"].home.parent / "user-models"


def channel(handle, token: str | None = TOKEN) -> grpc.Channel:
    return open_channel(handle.address, token=token, max_message_bytes=200 * 1024 * 1024)


def still_up(handle) -> None:
    assert handle.process.poll() is None, handle.log_tail()
    assert health_status(channel(handle)) == "SERVING"


def run_validation(handle, store: ArtifactStore, rows: bytes) -> validator_pb2.ValidationResult:
    examples = store.put_bytes("bad/examples.jsonl", rows)
    stub = validator_pb2_grpc.ValidatorServiceStub(channel(handle))
    operation = stub.StartValidation(validator_pb2.StartValidationRequest(
        task=task_to_proto(SPEC), examples=artifact_to_proto(examples),
        config={"length": {"enabled": False}, "off_topic": {"enabled": False}}), timeout=30)
    done = OperationsClient(channel(handle)).wait(operation.name, timeout=300)
    return OperationsClient.result(done, validator_pb2.ValidationResult)


def test_malformed_lines_unknown_labels_and_wrong_types_become_rejected_rows(services) -> None:
    handles, store = services
    rows = b"".join([
        json.dumps({"input": "Loved it, would buy again", "output": "positive"}).encode() + b"\n",
        b'{"input": "broken json", "output": \n',
        json.dumps({"input": "Meh at best", "output": "neutral"}).encode() + b"\n",
        json.dumps({"input": "Great phone", "output": ["positive"]}).encode() + b"\n",
        json.dumps({"input": 17, "output": "negative"}).encode() + b"\n",
    ])
    result = run_validation(handles["validator"], store, rows)
    assert (result.read, result.accepted_count, result.rejected_count) == (5, 1, 4)
    assert result.rejected_by_reason["malformed"] >= 1 and result.rejected_by_reason["format"] >= 2
    rejected = [json.loads(line) for line in store.read_bytes(result.rejected.uri).decode().splitlines()]
    malformed = next(r for r in rejected if r["reason"] == "malformed")
    assert malformed["line"] == 2
    assert any('"neutral" is not one of the labels' in r["detail"] for r in rejected)
    still_up(handles["validator"])


def test_unauthenticated_calls_are_refused(services) -> None:
    handles, _ = services
    for name, handle in handles.items():
        with pytest.raises(grpc.RpcError) as info:
            OperationsClient(channel(handle, token=None)).list()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        with pytest.raises(grpc.RpcError) as info:
            OperationsClient(channel(handle, token="not-the-token")).list()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
        still_up(handle)


def test_a_100_mb_message_is_refused(services) -> None:
    handles, _ = services
    stub = serving_pb2_grpc.ServingServiceStub(channel(handles["serving"]))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(serving_pb2.PredictRequest(model_name="any", inputs=["x" * (100 * 1024 * 1024)]), timeout=120)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    still_up(handles["serving"])


def test_artifact_uris_outside_the_store_are_refused(services) -> None:
    handles, store = services
    stub = validator_pb2_grpc.ValidatorServiceStub(channel(handles["validator"]))
    for uri in ("../../../etc/passwd", "file:///etc/passwd", f"{store.url}/../outside.jsonl"):
        operation = stub.StartValidation(validator_pb2.StartValidationRequest(
            task=task_to_proto(SPEC), examples=common_pb2.ArtifactRef(uri=uri)), timeout=30)
        done = OperationsClient(channel(handles["validator"])).wait(operation.name, timeout=120)
        assert done.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0], (uri, done.error.message)
        assert "store" in done.error.message or ".." in done.error.message
    still_up(handles["validator"])


def test_model_paths_outside_the_allowed_roots_are_refused_by_every_service(services, tmp_path: Path) -> None:
    handles, store = services
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "model.safetensors").write_bytes(b"weights")
    train = store.put_bytes("bad/train-roots.jsonl", b'{"input": "fine", "output": "positive"}\n')
    trainer = trainer_pb2_grpc.TrainerServiceStub(channel(handles["trainer"]))
    serving = serving_pb2_grpc.ServingServiceStub(channel(handles["serving"]))
    evaluator = evaluator_pb2_grpc.EvaluatorServiceStub(channel(handles["evaluator"]))
    for ref in ("/etc", str(outside), outside.as_uri(), f"{_user_models(handles)}/../../elsewhere"):
        model = common_pb2.ModelRef(uri=ref)
        student = evaluator_pb2.Candidate(name="s", kind=evaluator_pb2.CANDIDATE_KIND_STUDENT, model=model)
        calls = [
            ("trainer", trainer.StartTraining, trainer_pb2.StartTrainingRequest(
                task=task_to_proto(SPEC), train=artifact_to_proto(train), student=model)),
            ("serving load", serving.LoadModel, serving_pb2.LoadModelRequest(
                name="x", bundle=common_pb2.ArtifactRef(uri=ref))),
            ("serving export", serving.StartExport, serving_pb2.StartExportRequest(task=task_to_proto(SPEC),
                                                                                   model=model)),
            ("evaluator", evaluator.StartEvaluation, evaluator_pb2.StartEvaluationRequest(
                task=task_to_proto(SPEC), test=artifact_to_proto(train), candidates=[student])),
        ]
        for name, method, request in calls:
            with pytest.raises(grpc.RpcError) as info:
                method(request, timeout=30)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, ref, info.value.details())
            assert "DISTILLERY_MODEL_ROOTS" in info.value.details(), (name, ref)
    for name in ("trainer", "serving", "evaluator"):
        still_up(handles[name])


def test_a_pickle_checkpoint_is_never_loaded(services, tmp_path: Path) -> None:
    handles, store = services
    checkpoint = _user_models(handles) / "pickled"  # under DISTILLERY_MODEL_ROOTS: allowed, then refused
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (checkpoint / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle stream
    train = store.put_bytes("bad/train.jsonl", b"".join(
        json.dumps({"input": f"review {i}", "output": "positive" if i % 2 else "negative"}).encode() + b"\n"
        for i in range(12)))
    stub = trainer_pb2_grpc.TrainerServiceStub(channel(handles["trainer"]))
    operation = stub.StartTraining(trainer_pb2.StartTrainingRequest(
        task=task_to_proto(SPEC), train=artifact_to_proto(train),
        student=common_pb2.ModelRef(uri=str(checkpoint))), timeout=30)
    done = OperationsClient(channel(handles["trainer"])).wait(operation.name, timeout=300)
    assert done.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0], done.error.message
    assert "pickle" in done.error.message or "safetensors" in done.error.message
    still_up(handles["trainer"])


def test_unknown_model_is_not_found(services) -> None:
    handles, _ = services
    stub = serving_pb2_grpc.ServingServiceStub(channel(handles["serving"]))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(serving_pb2.PredictRequest(model_name="no-such-model", inputs=["hello"]), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-model" in info.value.details()
    still_up(handles["serving"])


def test_a_task_folder_with_three_seeds_gets_one_line_from_the_cli() -> None:
    folder = REPO / "tests" / "data" / "bad_tasks" / "too_few_seeds"
    out = subprocess.run([sys.executable, "-m", "services.pipeline.cli", "run", str(folder)], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert out.returncode == 1
    assert out.stderr.strip() == ("distillery: seeds.jsonl: has 3 seed example(s); at least 10 are needed so the "
                                  "teacher sees the task's variety (10-50 is typical), or give a traces.jsonl")
    assert "Traceback" not in out.stderr
