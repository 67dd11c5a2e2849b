"""The generator service for real: `python -m services.generator` in the vLLM environment, the
in-process vLLM engine with the catalog teacher (gemma3-270m), gRPC on loopback. One server for
the whole module (engine start is expensive); the last test kills it with SIGKILL mid-job and
restarts it on the same home."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from distillery.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.artifacts import ArtifactStore
from services.common.client import OperationsClient, operation_metadata
from services.common.convert import task_to_proto
from services.common.jsonl import read_jsonl
from services.common.taskspec import TaskBundle, check_output, load_task, normalize_text
from tests.helpers.services import ServiceProcess, start_service_process, vllm_python

# In `make test` (not slow): one engine for the module, small row counts (CI runs every path:
# constrained Complete, Label, classification/extraction/tool-call generation, cancel, kill -9).
# DISTILLERY_TEST_GENERATOR_ROWS=50 gives the longer runs.
pytestmark = [pytest.mark.vllm]

TASKS = Path(__file__).resolve().parents[1] / "data" / "generator_tasks"
TEACHER = os.environ.get("DISTILLERY_TEST_TEACHER", "gemma3-270m")
ROWS = int(os.environ.get("DISTILLERY_TEST_GENERATOR_ROWS", "12"))
RPC_TIMEOUT = 1800.0


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory, model_cache: Path, materialized) -> ServiceProcess:
    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM environment at {python} (set DISTILLERY_VLLM_PYTHON or run `make setup`)")
    materialized(TEACHER)  # converted here (core env) once per machine; the service only finds it
    home = tmp_path_factory.mktemp("generator-home")
    handle = start_service_process("generator", python, home, extra_env={
        "DISTILLERY_MODEL_CACHE": str(model_cache),
        "DISTILLERY_TEACHER": TEACHER,
        "DISTILLERY_GENERATOR_WARMUP": "1",  # the engine starts while the first test waits
        "DISTILLERY_VLLM_KVCACHE_GIB": "1",
        "DISTILLERY_VLLM_MAX_MODEL_LEN": "2048",
    }, timeout=180)
    yield handle
    handle.stop()


def stub(handle: ServiceProcess) -> generator_pb2_grpc.GeneratorServiceStub:
    return generator_pb2_grpc.GeneratorServiceStub(handle.channel())


def bundle(name: str) -> TaskBundle:
    loaded = load_task(TASKS / name)
    loaded.spec.teacher = TEACHER
    return loaded


def upload_seeds(handle: ServiceProcess, loaded: TaskBundle) -> common_pb2.ArtifactRef:
    store = ArtifactStore((handle.home / "store").as_uri())
    artifact = store.put_file(f"inputs/{loaded.spec.name}/seeds.jsonl", loaded.root / "seeds.jsonl")
    return common_pb2.ArtifactRef(uri=artifact.uri, sha256=artifact.sha256, size=artifact.size)


def start(handle: ServiceProcess, loaded: TaskBundle, target: int, request_id: str = "", seed: int = 1):
    request = generator_pb2.StartGenerationRequest(task=task_to_proto(loaded.spec), seeds=upload_seeds(handle, loaded),
                                                   target_count=target, temperature=0.9, top_p=0.95,
                                                   random_seed=seed, request_id=request_id)
    return stub(handle).StartGeneration(request, timeout=60)


def finished_rows(handle: ServiceProcess, operation_name: str, loaded: TaskBundle, target: int) -> list[dict]:
    ops = OperationsClient(handle.channel())
    operation = ops.wait(operation_name, timeout=RPC_TIMEOUT)
    assert operation.done, f"operation {operation_name} did not finish:\n{handle.log_tail()}"
    result = OperationsClient.result(operation, generator_pb2.GenerationResult)
    store = ArtifactStore((handle.home / "store").as_uri())
    rows = read_jsonl(store.local_path(result.examples.uri))
    assert result.generated == target == len(rows)
    assert result.prompt_tokens > 0 and result.completion_tokens > 0 and result.teacher == TEACHER
    assert len({r["id"] for r in rows}) == target
    seeds = {normalize_text(s.input) for s in loaded.seeds}
    for row in rows:
        assert check_output(loaded.spec, row["output"]) == row["output"]  # schema-valid, canonical
        assert normalize_text(row["input"]) not in seeds  # seeds are never copied verbatim
    rejected = read_jsonl(store.local_path(result.rejected.uri))
    assert result.rejected_count == len(rejected)
    return rows


def test_complete_with_constraints(generator: ServiceProcess) -> None:
    few_shot = ("Input: my card is broken\nLabel: card\n\nInput: send money to bob\nLabel: transfer\n\n"
                "Input: what is my balance\nLabel: balance\n\nInput: I lost my card yesterday\nLabel:")
    choice = generator_pb2.OutputConstraint(choice=generator_pb2.ChoiceList(choices=[" card", " transfer", " balance"]))
    reply = stub(generator).Complete(generator_pb2.CompleteRequest(
        prompts=[generator_pb2.Prompt(text=few_shot)] * 2, constraint=choice, max_tokens=8, choice_logprobs=True),
        timeout=RPC_TIMEOUT)
    assert reply.model == TEACHER and len(reply.completions) == 2
    for completion in reply.completions:
        assert completion.text in (" card", " transfer", " balance")
        assert sum(completion.choice_probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        assert completion.prompt_tokens > 20 and completion.completion_tokens >= 1
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
              "required": ["name", "city"], "additionalProperties": False}
    reply = stub(generator).Complete(generator_pb2.CompleteRequest(
        prompts=[generator_pb2.Prompt(text="Text: Anna lives in Berlin\nOutput: {\"name\":\"Anna\",\"city\":\"Berlin\"}"
                                           "\n\nText: Tom lives in Rome\nOutput:"),
                 generator_pb2.Prompt(chat=generator_pb2.ChatList(messages=[
                     generator_pb2.ChatMessage(role="user", content="Tom lives in Rome. Give name and city as JSON.")]))],
        constraint=generator_pb2.OutputConstraint(json_schema=json.dumps(schema)), max_tokens=64, temperature=0.0),
        timeout=RPC_TIMEOUT)
    for completion in reply.completions:
        value = json.loads(completion.text)
        assert set(value) == {"name", "city"}
        # Compact JSON: the engine is built with disable_any_whitespace (a weak teacher otherwise
        # pads answers with newlines until max_tokens).
        assert completion.text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_label_gives_teacher_answers_with_probabilities(generator: ServiceProcess) -> None:
    loaded = bundle("intent")
    reply = stub(generator).Label(generator_pb2.LabelRequest(
        task=task_to_proto(loaded.spec), seeds=upload_seeds(generator, loaded),
        examples=[common_pb2.Example(input=e.input) for e in loaded.test]), timeout=RPC_TIMEOUT)
    assert len(reply.completions) == len(loaded.test)
    for completion in reply.completions:
        assert completion.text in loaded.spec.labels
        assert set(completion.choice_probabilities) == set(loaded.spec.labels)
        assert sum(completion.choice_probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    correct = sum(c.text == e.output for c, e in zip(reply.completions, loaded.test))
    assert correct >= 1  # a weak base teacher, but not a random one on three obvious cases


def test_generates_classification_with_progress_stream(generator: ServiceProcess) -> None:
    loaded = bundle("intent")
    operation = start(generator, loaded, ROWS, request_id=f"intent-{ROWS}")
    again = start(generator, loaded, ROWS, request_id=f"intent-{ROWS}")
    assert again.name == operation.name  # request_id makes StartGeneration idempotent
    snapshots = []
    for update in OperationsClient(generator.channel()).watch(operation.name, interval=1.0):
        meta = operation_metadata(update)
        snapshots.append((meta.done, meta.total, dict(meta.counters), meta.eta_seconds))
        if update.done:
            break
    assert any(done > 0 and total == ROWS for done, total, _, _ in snapshots)
    last_counters = [c for _, _, c, _ in snapshots if c.get("tokens")][-1]
    assert last_counters["tokens"] > 0 and last_counters["tokens_per_second"] > 0
    rows = finished_rows(generator, operation.name, loaded, ROWS)
    labels = {r["output"] for r in rows}
    assert len(labels) >= 2  # balanced targets: more than one label comes back
    assert all(0.0 <= r["metadata"]["label_probability"] <= 1.0 for r in rows)


@pytest.mark.parametrize("task", ["contact", "weather_tools"])
def test_generates_structured_tasks(generator: ServiceProcess, task: str) -> None:
    loaded = bundle(task)
    operation = start(generator, loaded, ROWS)
    rows = finished_rows(generator, operation.name, loaded, ROWS)
    assert all(json.loads(r["output"]) for r in rows)


def test_cancel(generator: ServiceProcess) -> None:
    operation = start(generator, bundle("intent"), 5000, seed=5)
    ops = OperationsClient(generator.channel())
    ops.cancel(operation.name)
    final = ops.wait(operation.name, timeout=RPC_TIMEOUT)
    assert final.done and final.error.code == 1  # CANCELLED


def test_kill9_mid_job_resumes_without_duplicates_or_losses(generator: ServiceProcess) -> None:
    loaded = bundle("intent")
    target = 32  # two batches of 16: the kill lands after the first, before the second is written
    operation = start(generator, loaded, target, seed=42)
    ops = OperationsClient(generator.channel())
    deadline = time.time() + RPC_TIMEOUT
    while time.time() < deadline:  # wait until at least one batch is on disk
        meta = operation_metadata(ops.get(operation.name))
        if meta.done >= 1:
            break
        time.sleep(0.5)
    examples = generator.home / "work" / "generator" / operation.name.rsplit("/", 1)[-1] / "out" / "examples.jsonl"
    generator.kill(signal.SIGKILL)
    before = examples.read_bytes().split(b"\n")[:-1]
    assert 0 < len(before) < target
    generator.start(timeout=180)  # same home: the operation resumes
    rows = finished_rows(generator, operation.name, loaded, target)
    after = examples.read_bytes().split(b"\n")[:len(before)]
    assert [hashlib.sha256(line).hexdigest() for line in after] == \
        [hashlib.sha256(line).hexdigest() for line in before]  # the first rows are unchanged
    assert [json.loads(line)["id"] for line in before] == [r["id"] for r in rows[:len(before)]]
    ops = OperationsClient(generator.channel())
    meta = operation_metadata(ops.get(operation.name))
    assert meta.state == "SUCCEEDED"
