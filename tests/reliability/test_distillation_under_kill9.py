"""The whole platform, for real, with every long-running service killed mid-job: six service
processes on loopback, the bundled tiny models (teacher gemma3-270m on vLLM, student
smollm2-135m-instruct), the news-topic example task, with mutual TLS and a bearer token on
every service and every client (as `distillery up --secure` runs it).

One distillation; while it runs, each service that does long work is sent SIGKILL in the middle
of its stage and started again on the same home:

  generate  the generator, after its first batch of rows is on disk
  train     the trainer after its first checkpoint, and the pipeline itself at the same moment
  evaluate  the evaluator, after it wrote its first predictions
  export    the serving service, while it exports the ONNX bundle

The job must finish with zero lost and zero duplicated rows (counted and hashed), without
redoing the stages it had finished; the served student then takes 32 concurrent clients for
60 s (DISTILLERY_SOAK_SECONDS) without an error; one row is rejected on the review page in a real
headless Chromium (HTTPS, the token) and the test set approved; a retune with new validation settings
reuses the generated rows, validates them again and trains on them as reviewed (without that row). Last, the teacher engine's worker process alone is
killed (what the OOM killer does on a full machine): the generator builds a new engine and answers
the next call without a service restart. (The validator is not killed: it validates 40 rows
in well under a second, there is no "middle" to kill it in.)"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from distillery.v1 import (
    common_pb2,
    generator_pb2,
    generator_pb2_grpc,
    pipeline_pb2,
    pipeline_pb2_grpc,
    serving_pb2,
    serving_pb2_grpc,
)
from google.protobuf import json_format

from services.common.artifacts import Artifact, ArtifactStore
from services.common.client import OperationsClient, health_status, open_channel
from services.common.config import SERVICES, ClientSecurity
from services.common.convert import artifact_to_proto, struct_from, task_to_proto
from services.common.taskspec import load_task
from services.pipeline.cli import task_request_id, upload_task
from services.pipeline.local_security import ensure_local_security
from services.trainer.checkpoint import list_checkpoints
from tests.helpers.browser import review_in_browser
from tests.helpers.load import hammer
from tests.helpers.services import ServiceProcess, free_port, start_service_process, vllm_python

REPO = Path(__file__).resolve().parents[2]
TARGET_ROWS = 40
EVAL_EXAMPLES = 15
OVERRIDES = {
    "generation": {"target_count": TARGET_ROWS, "random_seed": 3},
    # A checkpoint every 2 steps: the trainer is killed after one exists, so it must resume from it.
    "training": {"epochs": 2, "batch_size": 8, "max_seq_len": 160, "checkpoint_every_steps": 2},
    # The fair seed-only baseline runs too (on by default); its least step budget is cut from 60 to
    # 8 to fit CI: it still trains for at least as many steps as the student.
    "evaluation": {"max_examples": EVAL_EXAMPLES, "seed_only_min_steps": 8},
    "serving": {"quantizations": ["int8"], "serve": "int8"},
}
SOAK_SECONDS = float(os.environ.get("DISTILLERY_SOAK_SECONDS", "60"))
STAGE_TIMEOUT = 1500.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):
    if not vllm_python().exists():
        pytest.skip(f"the vLLM environment ({vllm_python()}) is not built; run `make setup`")
    root = tmp_path_factory.mktemp("platform")
    ports = {name: free_port() for name in SERVICES}
    shared = {f"DISTILLERY_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()}
    shared.update({"DISTILLERY_STORE_URL": (root / "store").as_uri(), "DISTILLERY_MODEL_CACHE": str(model_cache),
                   "DISTILLERY_HTTP_PORT": str(free_port()), "DISTILLERY_REVIEW_PORT": str(free_port()),
                   # Keep the teacher's KV cache small: CI machines have 24 GiB for everything.
                   "DISTILLERY_VLLM_KVCACHE_GIB": "1"})
    # The whole platform with mutual TLS and a bearer token on, as `distillery up --secure` runs it:
    # every service-to-service call below goes through TLS with the token.
    shared.update(ensure_local_security(root))
    handles: dict[str, ServiceProcess] = {}
    try:
        for name in ("generator", "validator", "trainer", "evaluator", "serving", "pipeline"):
            python = vllm_python() if name == "generator" else None
            handles[name] = start_service_process(name, python, root / name, port=ports[name], extra_env=shared,
                                                  timeout=300)
        yield handles, ArtifactStore(shared["DISTILLERY_STORE_URL"]), shared
    finally:
        for handle in handles.values():
            handle.stop()


def _job(handles: dict[str, ServiceProcess], name: str) -> pipeline_pb2.Job:
    stub = pipeline_pb2_grpc.PipelineServiceStub(handles["pipeline"].channel())
    return stub.GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30)


def _wait_for(handles: dict[str, ServiceProcess], name: str, stage: str, ready: Callable[[], bool],
              what: str) -> None:
    """Poll until ``ready()`` while ``stage`` runs; fail if the stage ends first (the kill would
    then not be "mid-job" and the test would prove nothing)."""
    deadline = time.time() + STAGE_TIMEOUT
    while time.time() < deadline:
        job = _job(handles, name)
        assert job.state not in ("FAILED", "CANCELLED"), job.message
        state = {s.name: s for s in job.stages}[stage].state
        if state == pipeline_pb2.STAGE_STATE_RUNNING and ready():
            return
        assert state in (pipeline_pb2.STAGE_STATE_PENDING, pipeline_pb2.STAGE_STATE_RUNNING), \
            f"stage {stage} ended before {what}: nothing was killed mid-job"
        time.sleep(0.3)
    raise TimeoutError(f"stage {stage}: {what} did not happen within {STAGE_TIMEOUT:.0f}s")


def _jsonl_lines(path: Path) -> list[bytes]:
    """Complete lines only (a row being appended right now has no newline yet)."""
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def _only(paths: list[Path], what: str) -> Path:
    assert len(paths) == 1, f"expected one {what}, found {paths}"
    return paths[0]


def _sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def test_plaintext_tokenless_and_certificateless_clients_are_refused(platform) -> None:
    handles, _, shared = platform
    for name, handle in handles.items():
        assert health_status(handle.channel(), timeout=5) == "SERVING", name
        plaintext = health_status(open_channel(handle.address), timeout=5)
        assert plaintext.startswith("UNREACHABLE"), (name, plaintext)
        no_client_cert = ClientSecurity(token=shared["DISTILLERY_AUTH_TOKEN"], ca=Path(shared["DISTILLERY_TLS_CA"]))
        assert health_status(open_channel(handle.address, security=no_client_cert), timeout=5).startswith(
            "UNREACHABLE"), name  # mutual TLS: no client certificate, no handshake
    tokenless = open_channel(handles["pipeline"].address, security=replace(handles["pipeline"].security, token=None))
    with pytest.raises(grpc.RpcError) as info:
        pipeline_pb2_grpc.PipelineServiceStub(tokenless).ListJobs(pipeline_pb2.ListJobsRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The HTTP gateway speaks HTTPS with the same certificate, and wants the token too.
    url = f"127.0.0.1:{shared['DISTILLERY_HTTP_PORT']}/v1/models"
    context = ssl.create_default_context(cafile=shared["DISTILLERY_TLS_CA"])
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to the TLS port: no answer
        urllib.request.urlopen(f"http://{url}", timeout=10)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"https://{url}", timeout=10, context=context)
    assert refused.value.code == 401
    authorized = urllib.request.Request(f"https://{url}",
                                        headers={"Authorization": f"Bearer {shared['DISTILLERY_AUTH_TOKEN']}"})
    with urllib.request.urlopen(authorized, timeout=10, context=context) as response:
        assert response.status == 200


def test_distillation_survives_kill9_of_every_long_running_service(platform) -> None:
    handles, store, shared = platform
    bundle = load_task(REPO / "examples" / "news-topic")
    artifacts = upload_task(bundle, store)
    request = pipeline_pb2.StartDistillationRequest(
        task=task_to_proto(bundle.spec), seeds=artifact_to_proto(artifacts["seeds"]),
        test=artifact_to_proto(artifacts["test"]), overrides=struct_from(OVERRIDES),
        request_id=task_request_id(bundle, artifacts, OVERRIDES))
    stub = pipeline_pb2_grpc.PipelineServiceStub(handles["pipeline"].channel())
    name = stub.StartDistillation(request, timeout=30).name
    # The same request again re-attaches to the same job instead of starting a second one.
    assert stub.StartDistillation(request, timeout=30).name == name
    kills: list[str] = []

    # --- generate: kill the generator once its first batch is on disk -----------------------
    generator_work = handles["generator"].home / "work" / "generator"
    examples_files = lambda: sorted(generator_work.glob("*/out/examples.jsonl"))  # noqa: E731
    _wait_for(handles, name, "generate",
              lambda: bool(examples_files()) and 0 < len(_jsonl_lines(examples_files()[0])) < TARGET_ROWS,
              "the first batch of generated rows")
    examples_path = _only(examples_files(), "generator output")
    handles["generator"].kill(signal.SIGKILL)
    before_kill = _jsonl_lines(examples_path)
    assert 0 < len(before_kill) < TARGET_ROWS
    handles["generator"].start(timeout=300)  # same home: the operation resumes from its rows
    kills.append(f"generator after {len(before_kill)}/{TARGET_ROWS} rows")

    # --- train: kill the trainer after its first checkpoint, and the pipeline with it -------
    trainer_work = handles["trainer"].home / "work" / "trainer"
    checkpoints = lambda: [c for d in trainer_work.glob("*/checkpoints") for c in list_checkpoints(d)]  # noqa: E731
    _wait_for(handles, name, "train", lambda: bool(checkpoints()), "the first training checkpoint")
    generate_operation = {s.name: s for s in _job(handles, name).stages}["generate"].operation
    assert generate_operation
    step = max(c.step for c in checkpoints())
    handles["trainer"].kill(signal.SIGKILL)
    handles["pipeline"].kill(signal.SIGKILL)
    handles["trainer"].start(timeout=120)
    handles["pipeline"].start(timeout=120)
    kills.append(f"trainer and pipeline after checkpoint step {step}")

    # --- evaluate: kill the evaluator once it wrote predictions ------------------------------
    evaluator_work = handles["evaluator"].home / "work" / "evaluator"
    predicted = lambda: sum(len(_jsonl_lines(p)) for p in evaluator_work.glob("*/predictions/*.jsonl"))  # noqa: E731
    _wait_for(handles, name, "evaluate", lambda: predicted() > 0, "the first predictions")
    predicted_before = predicted()
    handles["evaluator"].kill(signal.SIGKILL)
    handles["evaluator"].start(timeout=120)
    kills.append(f"evaluator after {predicted_before} predictions")

    # --- export: kill the serving service while it exports -----------------------------------
    serving_work = handles["serving"].home / "work" / "serving"
    _wait_for(handles, name, "export", lambda: any(serving_work.glob("*/bundle")), "the export's bundle folder")
    handles["serving"].kill(signal.SIGKILL)
    # Provably mid-export: its work had begun (the bundle folder above) and had not ended (no
    # bundle is sealed in the store yet).
    assert not list(Path(store.root).rglob("bundle/MANIFEST.json")), "the export had finished before the kill"
    handles["serving"].start(timeout=120)
    kills.append("serving during the export")

    operation = OperationsClient(handles["pipeline"].channel()).wait(name, timeout=2400, poll=10)
    assert operation.done
    job = _job(handles, name)
    assert job.state in ("SUCCEEDED", "NEEDS_ATTENTION"), (job.message, kills)
    stages = {s.name: s for s in job.stages}
    for stage in ("generate", "validate", "train", "train_seed_only", "evaluate", "export", "deploy"):
        assert stages[stage].state == pipeline_pb2.STAGE_STATE_SUCCEEDED, (stage, stages[stage].error)
    # Finished stages were not redone after the pipeline restart.
    assert stages["generate"].operation == generate_operation

    # --- zero lost, zero duplicated rows -----------------------------------------------------
    generated_ref = Artifact.from_dict(json_format.MessageToDict(stages["generate"].artifacts["examples"],
                                                                 preserving_proto_field_name=True))
    generated = store.read_bytes(generated_ref).split(b"\n")[:-1]
    assert len(generated) == TARGET_ROWS, "rows lost or duplicated across the generator kill"
    assert [_sha(line) for line in generated[:len(before_kill)]] == [_sha(line) for line in before_kill], \
        "rows written before the kill changed"
    rows = [json.loads(line) for line in generated]
    assert len({r["id"] for r in rows}) == TARGET_ROWS
    assert len({_sha(line) for line in generated}) == TARGET_ROWS
    summary = json_format.MessageToDict(stages["validate"].summary)
    assert int(summary["read"]) == TARGET_ROWS
    assert int(summary["accepted_count"]) + int(summary["rejected_count"]) == TARGET_ROWS

    # Every candidate predicted every test example exactly once, across the evaluator kill.
    report = json.loads(store.read_bytes(Artifact.from_dict(json_format.MessageToDict(
        stages["evaluate"].artifacts["report_json"], preserving_proto_field_name=True))))
    assert {"teacher", "student", "base-student", "seed-only-student"} <= {c["name"] for c in report["candidates"]}
    assert any(c["a"] == "student" and c["b"] == "seed-only-student" for c in report["comparisons"])
    for partial in evaluator_work.glob("*/predictions/*.jsonl"):
        indices = [json.loads(line)["index"] for line in _jsonl_lines(partial)]
        assert sorted(indices) == list(range(EVAL_EXAMPLES)), (partial.name, Counter(indices))
    assert job.student_teacher_ratio > 0

    # --- the bundle links the trained checkpoint (one copy on disk), no work copy is left ------
    def stored(stage: str, artifact: str) -> Path:
        return store.local_path(Artifact.from_dict(json_format.MessageToDict(
            stages[stage].artifacts[artifact], preserving_proto_field_name=True)))

    deployed = "train_seed_only" if job.deployed_student == "seed-only-student" else "train"
    merged, exported = stored(deployed, "merged"), stored("export", "bundle")
    assert (exported / "checkpoint" / "model.safetensors").stat().st_ino == (merged / "model.safetensors").stat().st_ino
    assert (exported / "onnx" / "model.onnx").stat().st_nlink == 1  # the work copy was dropped
    # The bundle carries a Q8_0 GGUF made by llama.cpp's converter across the serving kill, and an
    # Ollama Modelfile pointing at it (Q4_K_M needs the compiled quantizer: tests/integration/test_gguf_export.py).
    gguf = {g["quantization"]: g for g in json_format.MessageToDict(stages["export"].summary)["gguf"]}
    assert not gguf["q8_0"]["error"] and (exported / "gguf" / "model-q8_0.gguf").read_bytes()[:4] == b"GGUF"
    assert "{{ .Prompt }}" in (exported / "gguf" / "Modelfile").read_text()
    assert not list((exported / "gguf").glob("*.partial"))
    assert not list((handles["serving"].home / "work" / "serving").glob("*/bundle"))

    # --- the served student answers, and takes 32 concurrent clients without an error -------
    serving = serving_pb2_grpc.ServingServiceStub(handles["serving"].channel())
    reply = serving.Predict(serving_pb2.PredictRequest(model_name="news-topic", inputs=[bundle.test[0].input]),
                            timeout=120)
    assert reply.predictions[0].output in bundle.spec.labels
    inputs = [e.input for e in bundle.test[:32]]

    def predict(i: int, n: int) -> None:
        out = serving.Predict(serving_pb2.PredictRequest(model_name="news-topic",
                                                         inputs=[inputs[(i + n) % len(inputs)]]),
                              timeout=120).predictions[0].output
        assert out in bundle.spec.labels, out

    calls, errors = hammer(predict, clients=32, seconds=SOAK_SECONDS)
    assert errors == [] and calls >= 32, (calls, errors[:5])

    # --- the review page: a row rejected in a real browser, the test set approved ------------
    accepted_rows = [json.loads(line) for line in store.read_bytes(Artifact.from_dict(json_format.MessageToDict(
        stages["validate"].artifacts["accepted"], preserving_proto_field_name=True))).split(b"\n")[:-1]]
    rejected_id = accepted_rows[0]["id"]  # the first accepted row: a stricter dedup keeps the first copy
    job_id = name.rsplit("/", 1)[-1]
    review_in_browser(f"https://127.0.0.1:{shared['DISTILLERY_REVIEW_PORT']}/review/{job_id}"
                      f"#token={shared['DISTILLERY_AUTH_TOKEN']}", rejected_id,
                      trust_cert=Path(shared["DISTILLERY_TLS_CERT"]))

    # --- a retune with other filter settings validates the same generated rows again ---------
    retune = stub.StartRetune(pipeline_pb2.StartRetuneRequest(job=name, overrides=struct_from({
        "validation": {"label_confidence": {"enabled": False}, "near_duplicate": {"threshold": 0.6}},
        "evaluation": {"candidates": ["student"]}, "serving": {"deploy": False}})), timeout=30)
    assert OperationsClient(handles["pipeline"].channel()).wait(retune.name, timeout=1800, poll=5).done
    retuned = {s.name: s for s in _job(handles, retune.name).stages}
    assert retuned["generate"].operation == generate_operation  # reused, not generated again
    assert retuned["validate"].operation and retuned["validate"].operation != stages["validate"].operation
    assert int(json_format.MessageToDict(retuned["validate"].summary)["read"]) == TARGET_ROWS
    assert retuned["train"].state == pipeline_pb2.STAGE_STATE_SUCCEEDED, retuned["train"].error
    # ... and trains on the rows as reviewed: the row rejected in the browser is not among them.
    review = json_format.MessageToDict(retuned["train"].summary)["review"]
    assert review["rejected_by_hand"] == 1 and review["test_approved"] is True and review["source"] == name
    trained_on = [json.loads(line) for line in store.read_bytes(Artifact.from_dict(review["data"])).split(b"\n")[:-1]]
    assert rejected_id not in {row["id"] for row in trained_on}
    assert len(trained_on) == int(json_format.MessageToDict(retuned["validate"].summary)["accepted_count"]) - 1
    retuned_report = json.loads(store.read_bytes(Artifact.from_dict(json_format.MessageToDict(
        retuned["evaluate"].artifacts["report_json"], preserving_proto_field_name=True))))
    assert [c["name"] for c in retuned_report["candidates"]] == ["student"]
    assert retuned["export"].state == retuned["deploy"].state == pipeline_pb2.STAGE_STATE_SKIPPED

    # --- the teacher engine's worker dies alone: the generator starts a new engine ----------
    workers = [pid for pid in _descendants(handles["generator"].process.pid)
               if _comm(pid).startswith("VLLM::Worker")]
    assert workers, "no vLLM worker process under the generator"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    generator = generator_pb2_grpc.GeneratorServiceStub(handles["generator"].channel())
    reply = generator.Label(generator_pb2.LabelRequest(
        task=task_to_proto(bundle.spec), seeds=artifact_to_proto(artifacts["seeds"]),
        examples=[common_pb2.Example(input=e.input) for e in bundle.test[:3]]), timeout=900)
    assert [c.text in bundle.spec.labels for c in reply.completions] == [True] * 3
    assert handles["generator"].process.poll() is None  # the same service process
    assert health_status(handles["generator"].channel(), timeout=5) == "SERVING"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _comm(pid: int) -> str:
    """The process title vLLM sets (``VLLM::Worker...``), from the command line (``comm`` is cut
    at 15 characters)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""
