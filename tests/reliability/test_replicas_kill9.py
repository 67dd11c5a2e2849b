"""Two replicas of a worker service on one PostgreSQL database, one killed with SIGKILL mid-job
(issue 20): the other replica takes the job over when the dead one's lease runs out and finishes
it from what was written, with zero lost and zero duplicated rows (counted and hashed) and one
result. Real processes, a real PostgreSQL server (tests/helpers/postgres.py), the bundled tiny
models: the generator's vLLM teacher and the trainer's SmolLM2 student.

The replicas share one home (the shared volume of a Kubernetes Deployment: work directories and
the artifact store) and one database (DISTILLERY_DB_URL); the lease is 4 s so the takeover is
quick. Slow (two vLLM engines, two trainings): `make test-all` / `make test-reliability` run it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import grpc
import pytest
from distillery.v1 import (
    generator_pb2,
    generator_pb2_grpc,
    pipeline_pb2,
    pipeline_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from google.longrunning import operations_pb2

from services.common.artifacts import Artifact, ArtifactStore
from services.common.client import OperationsClient
from services.common.convert import artifact_to_proto, struct_from, task_to_proto
from services.common.jsonl import jsonl_bytes
from services.common.operations import open_operation_store
from services.common.taskspec import load_task
from services.trainer.checkpoint import list_checkpoints
from tests.helpers.services import ServiceProcess, free_port, start_service_process, vllm_python

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TARGET_ROWS = 40
TRAIN_STEPS = 10
LEASE_SECONDS = "4"


@pytest.fixture()
def shared_home(tmp_path: Path, postgres_server, model_cache: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    env = {"DISTILLERY_DB_URL": postgres_server.database_url("replicas"), "DISTILLERY_LEASE_SECONDS": LEASE_SECONDS,
           "DISTILLERY_STORE_URL": (home / "store").as_uri(), "DISTILLERY_MODEL_CACHE": str(model_cache),
           "DISTILLERY_VLLM_KVCACHE_GIB": "1"}
    return home, env


def _replicas(service: str, python: Path | None, home: Path, env: dict[str, str]) -> list[ServiceProcess]:
    return [start_service_process(service, python, home, port=free_port(), extra_env=env, timeout=300,
                                  label=f"{service}-{name}") for name in ("a", "b")]


def _put_examples(store: ArtifactStore, key: str, examples: list) -> Artifact:
    """Task examples as a JSONL artifact of input/output rows."""
    return store.put_bytes(key, jsonl_bytes({"input": e.input, "output": e.output} for e in examples))


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def _sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _wait_until(ready, what: str, timeout: float = 900.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")


def _result(operation: operations_pb2.Operation, message_type):
    assert operation.done and not operation.HasField("error"), operation.error.message
    result = message_type()
    assert operation.response.Unpack(result)
    return result


def test_a_generation_survives_the_kill9_of_its_replica(shared_home) -> None:
    if not vllm_python().exists():
        pytest.skip(f"the vLLM environment ({vllm_python()}) is not built; run `make setup`")
    home, env = shared_home
    bundle = load_task(REPO / "examples" / "news-topic")
    store = ArtifactStore(env["DISTILLERY_STORE_URL"])
    seeds = _put_examples(store, "inputs/seeds.jsonl", bundle.seeds)
    a, b = _replicas("generator", vllm_python(), home, env)
    try:
        request = generator_pb2.StartGenerationRequest(task=task_to_proto(bundle.spec), seeds=artifact_to_proto(seeds),
                                                       target_count=TARGET_ROWS, random_seed=3,
                                                       output_prefix="jobs/replicas/generate", request_id="gen-1")
        name = generator_pb2_grpc.GeneratorServiceStub(a.channel()).StartGeneration(request, timeout=60).name
        # The same request on the other replica is the same operation (one database decides).
        assert generator_pb2_grpc.GeneratorServiceStub(b.channel()).StartGeneration(request, timeout=60).name == name
        examples = home / "work" / "generator" / name.rsplit("/", 1)[-1] / "out" / "examples.jsonl"
        _wait_until(lambda: 0 < len(_lines(examples)) < TARGET_ROWS, "the first batch of rows on replica a")
        ops = open_operation_store(env["DISTILLERY_DB_URL"])
        holder = ops.get(name).owner
        # a holds it: the owner's process is in a's process group (the service may run in a child)
        assert holder and os.getpgid(int(holder.split(":")[1])) == a.process.pid
        a.kill(signal.SIGKILL)
        before_kill = _lines(examples)
        assert 0 < len(before_kill) < TARGET_ROWS
        operation = OperationsClient(b.channel()).wait(name, timeout=1500, poll=5)
        result = _result(operation, generator_pb2.GenerationResult)
        record = ops.get(name)
        assert record.owner is None and record.metadata.get("resumes") == 1  # b resumed it, then released it
        rows = store.read_bytes(Artifact(result.examples.uri, result.examples.sha256, result.examples.size)
                                ).split(b"\n")[:-1]
        assert len(rows) == TARGET_ROWS == result.generated, "rows lost or duplicated across the takeover"
        assert [_sha(r) for r in rows[:len(before_kill)]] == [_sha(r) for r in before_kill], \
            "rows written before the kill were changed or dropped"
        ids = [json.loads(r)["id"] for r in rows]
        assert len(set(ids)) == len(ids), "a row was generated twice"
    finally:
        for handle in (a, b):
            handle.stop()


def test_a_sharded_generation_runs_on_both_replicas_and_merges_every_row_once(shared_home) -> None:
    """generation.shards = 2 through the real pipeline, which talks to replica a only (one gRPC
    connection, as behind a Kubernetes Service): a takes one shard, and the other waits unclaimed in
    the database until b, idle, claims it; the pipeline merges both in index order."""
    if not vllm_python().exists():
        pytest.skip(f"the vLLM environment ({vllm_python()}) is not built; run `make setup`")
    home, env = shared_home
    bundle = load_task(REPO / "examples" / "news-topic")
    store = ArtifactStore(env["DISTILLERY_STORE_URL"])
    seeds = _put_examples(store, "inputs/seeds.jsonl", bundle.seeds)
    test = _put_examples(store, "inputs/test.jsonl", bundle.test[:5])
    a, b = _replicas("generator", vllm_python(), home, env)
    pipeline = None
    try:
        pipeline = start_service_process("pipeline", None, home / "pipeline", port=free_port(), timeout=300,
                                         extra_env={**env, "DISTILLERY_GENERATOR_ADDR": a.address,
                                                    "DISTILLERY_DB_URL": "", "DISTILLERY_REVIEW_PORT": str(free_port())})
        stub = pipeline_pb2_grpc.PipelineServiceStub(pipeline.channel())
        request = pipeline_pb2.StartDistillationRequest(
            task=task_to_proto(bundle.spec), seeds=artifact_to_proto(seeds), test=artifact_to_proto(test),
            request_id="sharded", overrides=struct_from({"generation": {"target_count": TARGET_ROWS, "shards": 2}}))
        name = stub.StartDistillation(request, timeout=30).name

        def generated() -> bool:
            job = stub.GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30)
            assert job.state not in ("FAILED", "CANCELLED"), job.message
            return {s.name: s for s in job.stages}["generate"].state == pipeline_pb2.STAGE_STATE_SUCCEEDED
        _wait_until(generated, "the sharded generation")
        job = stub.GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30)
        OperationsClient(pipeline.channel()).cancel(name)
        stage = {s.name: s for s in job.stages}["generate"]
        shards = stage.operation.split(",")
        ops = open_operation_store(env["DISTILLERY_DB_URL"])
        replicas = {ops.get(shard).metadata.get("replica") for shard in shards}
        assert len(shards) == 2 and len(replicas) == 2, f"both shards ran on one replica: {replicas}"
        ref = stage.artifacts["examples"]
        rows = store.read_bytes(Artifact(ref.uri, ref.sha256, ref.size)).split(b"\n")[:-1]
        indices = [json.loads(r)["metadata"]["index"] for r in rows]
        assert len(rows) == TARGET_ROWS and indices == sorted(indices) and len(set(indices)) == len(indices)
        assert len({_sha(r) for r in rows}) == len(rows), "a row is in the merge twice"
    finally:
        for handle in (a, b, pipeline):
            if handle is not None:
                handle.stop()


def test_a_training_survives_the_kill9_of_its_replica(shared_home) -> None:
    home, env = shared_home
    bundle = load_task(REPO / "examples" / "news-topic")
    store = ArtifactStore(env["DISTILLERY_STORE_URL"])
    seeds = _put_examples(store, "inputs/seeds.jsonl", bundle.seeds)
    a, b = _replicas("trainer", None, home, env)
    try:
        config = {"max_steps": TRAIN_STEPS, "batch_size": 4, "max_seq_len": 128, "checkpoint_every_steps": 2,
                  "eval_fraction": 0.0, "early_stopping_patience": 0}
        request = trainer_pb2.StartTrainingRequest(task=task_to_proto(bundle.spec), train=artifact_to_proto(seeds),
                                                   config=struct_from(config), output_prefix="jobs/replicas/train",
                                                   request_id="train-1")
        name = trainer_pb2_grpc.TrainerServiceStub(a.channel()).StartTraining(request, timeout=60).name
        work = home / "work" / "trainer" / name.rsplit("/", 1)[-1]
        _wait_until(lambda: bool(list_checkpoints(work / "checkpoints")) if (work / "checkpoints").exists() else False,
                    "the first checkpoint on replica a")
        step = max(c.step for c in list_checkpoints(work / "checkpoints"))
        assert step < TRAIN_STEPS
        a.kill(signal.SIGKILL)
        try:
            operation = OperationsClient(b.channel()).wait(name, timeout=1500, poll=5)
        except grpc.RpcError as exc:  # pragma: no cover - diagnostics
            raise AssertionError(b.log_tail()) from exc
        result = _result(operation, trainer_pb2.TrainingResult)
        assert result.steps == TRAIN_STEPS and result.merged_artifact.uri
        record = open_operation_store(env["DISTILLERY_DB_URL"]).get(name)
        assert record.metadata.get("resumes") == 1 and record.owner is None
        metrics = json.loads(store.read_bytes(Artifact(result.metrics.uri, result.metrics.sha256, result.metrics.size)))
        assert metrics["resumed_from_steps"] and 0 < metrics["resumed_from_steps"][0] < TRAIN_STEPS  # from a checkpoint of a
    finally:
        for handle in (a, b):
            handle.stop()
