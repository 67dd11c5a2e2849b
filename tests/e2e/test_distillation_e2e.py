"""The whole platform, for real: six service processes on loopback, the bundled tiny models
(teacher gemma3-270m on vLLM, student smollm2-135m-instruct), the news-topic example task.
The pipeline process is killed with SIGKILL in the middle of the job and restarted; the job must
finish without redoing the stages it had finished, and the served student must answer."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from distillery.v1 import pipeline_pb2, pipeline_pb2_grpc, serving_pb2, serving_pb2_grpc
from services.common.artifacts import Artifact, ArtifactStore
from services.common.client import OperationsClient, open_channel
from services.common.config import SERVICES
from services.common.taskspec import load_task
from services.pipeline.cli import task_request_id, upload_task
from services.common.convert import artifact_to_proto, struct_from, task_to_proto
from tests.helpers.services import free_port, start_service_process, vllm_python

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = {
    "generation": {"target_count": 40, "random_seed": 3},
    "training": {"epochs": 2, "batch_size": 8, "max_seq_len": 160},
    "evaluation": {"max_examples": 15},
    "serving": {"quantizations": ["int8"], "serve": "int8"},
}



@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):
    if not vllm_python().exists():
        pytest.skip(f"the vLLM environment ({vllm_python()}) is not built; run `make setup`")
    root = tmp_path_factory.mktemp("platform")
    ports = {name: free_port() for name in SERVICES}
    shared = {f"DISTILLERY_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()}
    shared.update({"DISTILLERY_STORE_URL": (root / "store").as_uri(), "DISTILLERY_MODEL_CACHE": str(model_cache),
                   "DISTILLERY_HTTP_PORT": str(free_port()),
                   # Keep the teacher's KV cache small: CI machines have 24 GiB for everything.
                   "DISTILLERY_VLLM_KVCACHE_GIB": "1"})
    handles = {}
    try:
        for name in ("generator", "validator", "trainer", "evaluator", "serving", "pipeline"):
            python = vllm_python() if name == "generator" else None
            handles[name] = start_service_process(name, python, root / name, port=ports[name], extra_env=shared,
                                                  timeout=300)
        yield handles, ArtifactStore(shared["DISTILLERY_STORE_URL"])
    finally:
        for handle in handles.values():
            handle.stop()


def test_full_distillation_survives_a_pipeline_kill(platform) -> None:
    handles, store = platform
    bundle = load_task(REPO / "examples" / "news-topic")
    artifacts = upload_task(bundle, store)
    request = pipeline_pb2.StartDistillationRequest(
        task=task_to_proto(bundle.spec), seeds=artifact_to_proto(artifacts["seeds"]),
        test=artifact_to_proto(artifacts["test"]), overrides=struct_from(OVERRIDES),
        request_id=task_request_id(bundle, artifacts, OVERRIDES))
    pipeline = handles["pipeline"]
    stub = pipeline_pb2_grpc.PipelineServiceStub(pipeline.channel())
    name = stub.StartDistillation(request, timeout=30).name
    # The same request again re-attaches to the same job instead of starting a second one.
    assert stub.StartDistillation(request, timeout=30).name == name

    # Wait until training runs, then kill the pipeline process mid-job.
    deadline = time.time() + 1500
    generate_operation = ""
    while time.time() < deadline:
        job = stub.GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30)
        stages = {s.name: s for s in job.stages}
        if stages["train"].state == pipeline_pb2.STAGE_STATE_RUNNING:
            generate_operation = stages["generate"].operation
            break
        assert job.state not in ("FAILED", "CANCELLED"), job.message
        time.sleep(2)
    assert generate_operation, "training never started"
    pipeline.kill(signal.SIGKILL)
    pipeline.start(timeout=120)

    channel = pipeline.channel()
    operation = OperationsClient(channel).wait(name, timeout=2400, poll=30)
    assert operation.done
    job = pipeline_pb2_grpc.PipelineServiceStub(channel).GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30)
    assert job.state in ("SUCCEEDED", "NEEDS_ATTENTION"), job.message
    stages = {s.name: s for s in job.stages}
    # Finished stages were not redone after the restart.
    assert stages["generate"].operation == generate_operation
    for stage in ("generate", "validate", "train", "evaluate", "export", "deploy"):
        assert stages[stage].state == pipeline_pb2.STAGE_STATE_SUCCEEDED, (stage, stages[stage].error)
    summary = json_format.MessageToDict(stages["validate"].summary)
    assert int(summary["read"]) >= 40
    assert int(summary["accepted_count"]) + int(summary["rejected_count"]) == int(summary["read"])

    # The report exists and scores the teacher and the students on the same test examples.
    report = json.loads(store.read_bytes(Artifact.from_dict(json_format.MessageToDict(
        stages["evaluate"].artifacts["report_json"], preserving_proto_field_name=True))))
    names = {c["name"] for c in report["candidates"]}
    assert {"teacher", "student", "base-student"} <= names
    assert job.student_teacher_ratio > 0

    # The served student answers with a valid label.
    serving = serving_pb2_grpc.ServingServiceStub(handles["serving"].channel())
    reply = serving.Predict(serving_pb2.PredictRequest(model_name="news-topic", inputs=[bundle.test[0].input]),
                            timeout=120)
    assert reply.predictions[0].output in bundle.spec.labels
