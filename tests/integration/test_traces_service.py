"""A task folder with production traces, through the real services: the real pipeline process
reads the traces.jsonl the CLI uploaded, curates it, has the real teacher (gemma3-270m in the
generator's vLLM engine) relabel every trace over gRPC — a committee where it disagrees with
itself — and hands the seeds and the held-out test set it made to the generation stage.

The traces are real BBC headlines (examples/news-topic's test rows, which this folder does not
use as a test set) in both logged shapes, with planted duplicates, a near copy, a copy of a seed
and noise. The job is cancelled once generation has started on the traces' seeds: the stages
after that are the ones every other job runs (tests/reliability/test_distillation_under_kill9.py)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from distillery.v1 import pipeline_pb2, pipeline_pb2_grpc
from google.protobuf import json_format

from services.common.artifacts import Artifact, ArtifactStore
from services.common.client import OperationsClient
from services.common.convert import artifact_to_proto, struct_from, task_to_proto
from services.common.taskspec import load_task
from services.pipeline.cli import traces_line, upload_task
from tests.helpers.services import ServiceProcess, free_port, start_service_process, vllm_python

REPO = Path(__file__).resolve().parents[2]
NEWS = REPO / "examples" / "news-topic"
TRACES = 40


def _trace_lines() -> list[dict]:
    rows = [json.loads(line) for line in (NEWS / "test.jsonl").read_text().splitlines()[:TRACES]]
    seed = json.loads((NEWS / "seeds.jsonl").read_text().splitlines()[0])
    lines = []
    for i, row in enumerate(rows):
        messages = [{"role": "system", "content": "You sort BBC articles."}, {"role": "user", "content": row["input"]}]
        if i % 2:  # a logged request and its response (the old model answered right on most)
            answer = row["output"] if i % 4 != 1 else "Not sure, maybe news?"
            lines.append({"request": {"model": "old-model", "messages": messages},
                          "response": {"choices": [{"message": {"role": "assistant", "content": answer}}]}})
        else:  # the fine-tuning shape, no answer
            lines.append({"messages": messages})
    lines.append({"messages": [{"role": "user", "content": rows[0]["input"].upper()}]})  # duplicate
    lines.append({"messages": [{"role": "user", "content": rows[2]["input"] + " More soon."}]})  # near copy
    lines.append({"messages": [{"role": "user", "content": seed["input"]}]})  # a seed
    lines.append({"messages": [{"role": "user", "content": "Как дела? 👍👍"}]})  # noise: another language
    return lines


@pytest.fixture()
def services(tmp_path: Path, model_cache: Path):
    if not vllm_python().exists():
        pytest.skip(f"the vLLM environment ({vllm_python()}) is not built; run `make setup`")
    ports = {"pipeline": free_port(), "generator": free_port()}
    shared = {f"DISTILLERY_{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()}
    shared.update({"DISTILLERY_STORE_URL": (tmp_path / "store").as_uri(), "DISTILLERY_MODEL_CACHE": str(model_cache),
                   "DISTILLERY_REVIEW_PORT": str(free_port()), "DISTILLERY_VLLM_KVCACHE_GIB": "1"})
    handles: dict[str, ServiceProcess] = {}
    try:
        handles["generator"] = start_service_process("generator", vllm_python(), tmp_path / "generator",
                                                     port=ports["generator"], extra_env=shared, timeout=300)
        handles["pipeline"] = start_service_process("pipeline", None, tmp_path / "pipeline", port=ports["pipeline"],
                                                    extra_env=shared, timeout=300)
        yield handles, ArtifactStore(shared["DISTILLERY_STORE_URL"])
    finally:
        for handle in handles.values():
            handle.stop()


def test_traces_are_curated_relabelled_by_the_real_teacher_and_become_the_jobs_seeds_and_test(
        services, tmp_path: Path) -> None:
    handles, store = services
    folder = tmp_path / "news-traces"
    folder.mkdir()
    shutil.copy(NEWS / "task.yaml", folder / "task.yaml")
    shutil.copy(NEWS / "seeds.jsonl", folder / "seeds.jsonl")
    (folder / "traces.jsonl").write_text("".join(json.dumps(line) + "\n" for line in _trace_lines()))
    bundle = load_task(folder)
    assert (len(bundle.seeds), len(bundle.test), len(bundle.traces)) == (20, 0, TRACES + 4)
    artifacts = upload_task(bundle, store)
    assert set(artifacts) == {"seeds", "traces"}  # no test.jsonl: the traces stage holds one out
    request = pipeline_pb2.StartDistillationRequest(
        task=task_to_proto(bundle.spec), seeds=artifact_to_proto(artifacts["seeds"]),
        traces=artifact_to_proto(artifacts["traces"]), request_id="traces-test",
        overrides=struct_from({"traces": {"test_fraction": 0.25}, "generation": {"target_count": 10}}))
    stub = pipeline_pb2_grpc.PipelineServiceStub(handles["pipeline"].channel())
    name = stub.StartDistillation(request, timeout=30).name

    deadline = time.time() + 900
    while True:
        job = stub.GetJob(pipeline_pb2.GetJobRequest(name=name), timeout=30)
        stages = {s.name: s for s in job.stages}
        assert job.state not in ("FAILED", "CANCELLED"), job.message
        if stages["generate"].state != pipeline_pb2.STAGE_STATE_PENDING:  # started from the traces' seeds
            break
        assert time.time() < deadline, f"the traces stage did not finish: {job.message}"
        time.sleep(1)
    OperationsClient(handles["pipeline"].channel()).cancel(name)

    traces = stages["traces"]
    assert traces.state == pipeline_pb2.STAGE_STATE_SUCCEEDED, traces.error
    summary = json_format.MessageToDict(traces.summary)
    dropped = summary["dropped_by_reason"]
    assert (dropped["duplicate"], dropped["near_duplicate"], dropped["seed_copy"], dropped["off_topic"]) == (1, 1, 1, 1)
    # every trace is accounted for: dropped, a seed, a test row or unused
    assert summary["read"] == TRACES + 4
    assert summary["dropped"] + summary["seeds"] + summary["test"] + summary["unused"] == summary["read"]
    assert summary["test"] == round((TRACES - dropped["teacher_unsure"] - dropped["teacher_invalid"]) * 0.25)
    # 20 traces carried an answer, 10 of them valid ("Not sure, maybe news?" is no label)
    assert summary["with_old_answer"] <= 10 and 0 <= summary["old_answer_agrees"] <= summary["with_old_answer"]

    def rows(stage_artifact) -> list[dict]:
        ref = Artifact.from_dict(json_format.MessageToDict(stage_artifact, preserving_proto_field_name=True))
        return [json.loads(line) for line in store.read_bytes(ref).decode().splitlines()]

    seeds, test = rows(traces.artifacts["seeds"]), rows(traces.artifacts["test"])
    assert len(seeds) == 20 + summary["seeds"] and len(test) == summary["test"]
    assert all(r["output"] in bundle.spec.labels for r in seeds + test)
    from_traces = [r for r in seeds if r.get("metadata", {}).get("source") == "trace"]
    assert len(from_traces) == summary["seeds"] and all(0.5 < r["metadata"]["teacher_agreement"] <= 1
                                                       for r in from_traces)
    assert not {r["input"] for r in seeds} & {r["input"] for r in test}  # no test row is a seed
    # the teacher-labelled test set is said plainly, and the CLI says what the traces became
    assert any("labelled by the teacher" in w for w in job.warnings)
    assert traces_line(job).startswith(
        f"traces: {TRACES + 4} read -> {int(summary['seeds'])} seeds, {int(summary['test'])} test")
