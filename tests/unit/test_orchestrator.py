"""The orchestrator against a scripted ``Workers`` (the pipeline's only seam to the five worker
services): stage order, what each stage is asked, resume after a failure, skips, the quality
gate's outcomes and which student is deployed. The worker services themselves are tested for
real elsewhere (tests/integration, tests/reliability); here the orchestrator's own decisions are."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from services.common.artifacts import Artifact, ArtifactStore
from services.common.enums import Quantization
from services.common.errors import FailedPrecondition
from services.common.jobs import JobRunner, OperationContext
from services.common.operations import open_operation_store
from services.common.taskspec import TaskSpec
from services.pipeline.calls import (
    CandidateScore,
    Comparison,
    EvaluationOutcome,
    ExportedVariant,
    ExportOutcome,
    GenerationOutcome,
    LoadedModel,
    Progress,
    TrainingOutcome,
    ValidationOutcome,
)
from services.pipeline.orchestrator import SEED_ONLY_MIN_STEPS, DistillationRunner
from services.pipeline.stages import JOB_NEEDS_ATTENTION, SKIPPED, SUCCEEDED

SPEC = TaskSpec(name="topics", type="classification", description="Classify a headline.",
                labels=["sport", "tech", "politics"], teacher="gemma3-270m", student="smollm2-135m-instruct")
SEEDS = [{"input": f"match report {i}", "output": "sport"} for i in range(4)] + \
        [{"input": f"new phone {i}", "output": "tech"} for i in range(4)]  # no politics seed


class ScriptedWorkers:
    """Answers each stage from a script; records every call, in order."""

    def __init__(self, store: ArtifactStore, *, per_label: dict[str, int] | None = None, train_steps: int = 34,
                 scores: list[dict[str, Any]] | None = None, comparisons: list[dict[str, Any]] | None = None,
                 ratio: float = 0.9, adapter: bool = True, fail: set[str] | None = None,
                 generated: dict[str, Any] | None = None) -> None:
        self.store = store
        self.per_label = per_label if per_label is not None else {"sport": 40, "tech": 40, "politics": 40}
        self.train_steps = train_steps
        self.scores = scores if scores is not None else [
            {"name": "teacher", "metrics": {"accuracy": 0.6}}, {"name": "student", "metrics": {"accuracy": 0.7}},
            {"name": "base-student", "metrics": {"accuracy": 0.2}},
            {"name": "seed-only-student", "metrics": {"accuracy": 0.5}}]
        self.comparisons = comparisons or []
        self.ratio = ratio
        self.adapter = adapter
        self.fail = set(fail or ())
        self.generated = generated or {}  # extra GenerationResult fields
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _art(self, key: str, data: Any) -> Artifact:
        return self.store.put_json(key, data)

    def run(self, stage, call, on_progress, cancelled):
        self.calls.append((stage, call))
        if stage in self.fail:
            raise FailedPrecondition(f"stage {stage} failed: scripted failure")
        on_progress(Progress(stage=stage, done=1, total=1))
        prefix = call.output_prefix
        if stage == "generate":  # a row per candidate index, from the shard's offset on
            rows = [{"input": f"row {call.index_offset + i}", "output": "sport",
                     "metadata": {"index": call.index_offset + i}} for i in range(call.target_count)]
            examples = self.store.put_bytes(f"{prefix}/examples.jsonl",
                                            "".join(json.dumps(r) + "\n" for r in rows).encode())
            return f"op-gen-{call.index_offset}", GenerationOutcome(
                examples=examples, rejected=self.store.put_bytes(f"{prefix}/rejected.jsonl", b""),
                generated=call.target_count, **self.generated)
        if stage == "validate":
            labels = {k: {"read": v, "accepted": v} for k, v in self.per_label.items()}
            return "op-val", ValidationOutcome(accepted=self._art(f"{prefix}/accepted.jsonl", []),
                                               report=self._art(f"{prefix}/report.json", {"labels": labels}),
                                               accepted_count=sum(self.per_label.values()))
        if stage in ("train", "train_seed_only"):
            adapter = self._art(f"{prefix}/adapter.json", {"stage": stage}) if self.adapter else None
            return f"op-{stage}", TrainingOutcome(merged=self._art(f"{prefix}/merged.json", {"stage": stage}),
                                                  metrics=self._art(f"{prefix}/metrics.json", {}),
                                                  steps=self.train_steps, adapter=adapter)
        if stage == "evaluate":
            return "op-eval", EvaluationOutcome(
                scores=[CandidateScore(**s) for s in self.scores], primary_metric="accuracy",
                student_teacher_ratio=self.ratio, comparisons=[Comparison(**c) for c in self.comparisons],
                report_markdown=self._art(f"{prefix}/report.md", "report"))
        if stage == "export":
            return "op-exp", ExportOutcome(bundle=self._art(f"{prefix}/bundle.json", {}),
                                           variants=[ExportedVariant(Quantization.NONE, accepted=True)])
        raise AssertionError(stage)

    def label(self, call):
        """The teacher's label for a trace: the topic word it names (``answers`` may overrule)."""
        self.calls.append(("generator.Label", call))
        words = {"goal": "sport", "phone": "tech", "vote": "politics"}
        return [next((label for word, label in words.items() if word in row.input), "?") for row in call.inputs]

    def load_model(self, call):
        self.calls.append(("serving.LoadModel", call))
        return LoadedModel(name=call.name, version=call.version, ready=True)

    def request(self, stage: str) -> Any:
        return [r for s, r in self.calls if s == stage][-1]

    def stages(self) -> list[str]:
        return [s for s, _ in self.calls]


@pytest.fixture()
def env(tmp_path: Path):
    store = ArtifactStore((tmp_path / "store").as_uri())
    runner = JobRunner("pipeline", open_operation_store(f"sqlite:///{tmp_path / 'ops.db'}"), store, tmp_path)
    seeds = store.put_bytes("inputs/seeds.jsonl", "".join(json.dumps(r) + "\n" for r in SEEDS).encode())
    test = store.put_bytes("inputs/test.jsonl", b'{"input": "a vote", "output": "politics"}\n')
    inputs: dict[str, Artifact | None] = {"seeds": seeds, "test": test, "context": None}

    def make(workers: ScriptedWorkers, overrides: dict[str, Any] | None = None, request_id: str = "job",
             inputs: dict[str, Artifact | None] = inputs, **kwargs: Any) -> DistillationRunner:
        record, _ = runner.ops.create("pipeline", "distillation", {}, request_id)
        ctx = OperationContext(record, runner, threading.Event())
        return DistillationRunner(ctx, workers, SPEC, inputs, overrides or {}, **kwargs)

    return store, make, seeds


def test_stage_order_and_what_each_stage_is_asked(env) -> None:
    store, make, seeds = env
    workers = ScriptedWorkers(store)
    result = make(workers).run()
    assert workers.stages() == ["generate", "validate", "train", "train_seed_only", "evaluate", "export",
                                "serving.LoadModel"]
    assert result["job"]["state"] == SUCCEEDED
    # the trained student learns from the accepted rows AND the seeds
    train = workers.request("train")
    assert train.seeds.uri == seeds.uri and train.train.uri.endswith("accepted.jsonl")
    # the seed-only baseline: all the seeds, no eval split, at least the trained student's steps
    baseline = workers.request("train_seed_only")
    assert baseline.train.uri == seeds.uri and baseline.seeds is None
    config = baseline.config
    assert config["eval_fraction"] == 0 and config["early_stopping_patience"] == 0
    assert config["max_steps"] == max(34, SEED_ONLY_MIN_STEPS)


def test_seed_only_steps_follow_a_longer_trained_run(env) -> None:
    store, make, _ = env
    runner = make(ScriptedWorkers(store, train_steps=250))
    runner.run()
    summary = runner.state.stage("train_seed_only").summary
    assert summary["config"]["max_steps"] == 250  # never fewer steps than the student it is compared with
    assert summary["config"]["learning_rate"] == pytest.approx(1e-3)


def test_a_failed_candidate_fails_the_gate(env) -> None:
    store, make, _ = env
    scores = [{"name": "teacher", "metrics": {"accuracy": 0.6}},
              {"name": "student", "metrics": {}, "error": "model directory is gone"}]
    result = make(ScriptedWorkers(store, scores=scores, ratio=0.0)).run()
    assert result["job"]["state"] == JOB_NEEDS_ATTENTION
    assert "evaluation failed for student" in result["job"]["message"]


def test_no_ratio_is_never_a_pass(env) -> None:
    store, make, _ = env
    result = make(ScriptedWorkers(store, ratio=0.0)).run()
    assert result["job"]["state"] == JOB_NEEDS_ATTENTION and "no student/teacher ratio" in result["job"]["message"]


def test_below_the_gate_needs_attention(env) -> None:
    store, make, _ = env
    result = make(ScriptedWorkers(store, ratio=0.5)).run()
    assert result["job"]["state"] == JOB_NEEDS_ATTENTION and "below the quality gate" in result["job"]["message"]


def test_the_better_seed_only_student_is_deployed(env) -> None:
    store, make, _ = env
    comparisons = [{"a": "student", "b": "seed-only-student", "metric": "accuracy", "delta": -0.3, "low": -0.36,
                    "high": -0.25, "n": 400, "verdict": "worse"}]
    scores = [{"name": "teacher", "metrics": {"accuracy": 0.54}}, {"name": "student", "metrics": {"accuracy": 0.49}},
              {"name": "seed-only-student", "metrics": {"accuracy": 0.79}}]
    workers = ScriptedWorkers(store, scores=scores, comparisons=comparisons, ratio=0.49 / 0.54)
    runner = make(workers)
    result = runner.run()["job"]
    export = workers.request("export")
    seed_only = runner.state.stage("train_seed_only").artifacts
    assert export.model.uri == seed_only["merged"]["uri"] and export.adapter.uri == seed_only["adapter"]["uri"]
    assert result["deployed_student"] == "seed-only-student"
    assert any("seed-only student beat" in w for w in result["warnings"])
    assert result["student_teacher_ratio"] == pytest.approx(0.79 / 0.54)
    assert result["state"] == SUCCEEDED and "seed-only student is deployed" in result["message"]


def test_a_tie_keeps_the_trained_student_and_says_so(env) -> None:
    store, make, _ = env
    comparisons = [{"a": "student", "b": "seed-only-student", "metric": "accuracy", "delta": 0.02, "low": -0.03,
                    "high": 0.07, "n": 200, "verdict": "no clear difference"}]
    workers = ScriptedWorkers(store, comparisons=comparisons)
    runner = make(workers)
    result = runner.run()["job"]
    assert workers.request("export").model.uri == runner.state.stage("train").artifacts["merged"]["uri"]
    assert result["deployed_student"] == "student" and "not clearly apart" in result["message"]


def test_parity_is_checked_on_the_tasks_own_inputs(env) -> None:
    store, make, _ = env
    workers = ScriptedWorkers(store)
    make(workers).run()
    parity = workers.request("export").parity_inputs
    rows = [json.loads(line) for line in store.read_bytes(parity).decode().splitlines()]
    assert [r["input"] for r in rows] == [s["input"] for s in SEEDS] + ["a vote"]  # seeds, then test inputs
    assert all("output" not in r for r in rows)  # inputs only: no label reaches the export


def test_full_finetune_exports_without_an_adapter(env) -> None:
    store, make, _ = env
    workers = ScriptedWorkers(store, adapter=False)
    result = make(workers, {"training": {"full_finetune": True}}).run()["job"]
    assert result["state"] == SUCCEEDED and workers.request("export").adapter is None


def test_thin_and_missing_labels_are_warned(env) -> None:
    store, make, _ = env
    runner = make(ScriptedWorkers(store, per_label={"sport": 30, "tech": 1}))
    result = runner.run()["job"]
    warnings = "\n".join(result["warnings"])
    assert "label 'politics' has no training rows" in warnings  # no seeds, no accepted rows
    assert "'tech'" not in warnings  # 1 accepted + 4 seeds reaches the floor of 5
    counts = runner.state.stage("validate").summary["rows_per_label"]
    assert counts == {"sport": {"accepted": 30, "seeds": 4}, "tech": {"accepted": 1, "seeds": 4},
                      "politics": {"accepted": 0, "seeds": 0}}


def test_a_weak_teacher_is_warned_once_in_the_generators_words(env) -> None:
    store, make, _ = env
    reason = ("the teacher labelled only 5/20 seeds right leave-one-out (0.25), below teacher_trust_accuracy "
              "0.80: rows keep the label they were generated for")
    workers = ScriptedWorkers(store, generated={"label_source": "target", "label_source_reason": reason,
                                                "teacher_seed_accuracy": 0.25, "teacher_seed_count": 20})
    warnings = make(workers).run()["job"]["warnings"]
    weak = [w for w in warnings if "teacher" in w and "seeds" in w]
    assert weak == [f"weak teacher: {reason}"]  # one line, the measurement said once


def test_a_failed_stage_resumes_without_redoing_finished_ones(env) -> None:
    store, make, _ = env
    workers = ScriptedWorkers(store, fail={"evaluate"})
    with pytest.raises(FailedPrecondition, match="stage evaluate failed"):
        make(workers, request_id="again").run()
    workers.fail.clear()
    before = len(workers.calls)
    result = make(workers, request_id="again").run()["job"]  # same operation, same state file
    assert [s for s, _ in workers.calls[before:]] == ["evaluate", "export", "serving.LoadModel"]
    assert result["state"] == SUCCEEDED


def test_baseline_off_and_no_deploy_are_skips(env) -> None:
    store, make, _ = env
    workers = ScriptedWorkers(store)
    runner = make(workers, {"evaluation": {"seed_only_baseline": False}, "serving": {"deploy": False}})
    result = runner.run()["job"]
    assert workers.stages() == ["generate", "validate", "train", "evaluate"]
    assert {runner.state.stage(s).state for s in ("train_seed_only", "export", "deploy")} == {SKIPPED}
    assert result["state"] == SUCCEEDED


class ReviewedWorkers(ScriptedWorkers):
    """Validation that leaves real JSONL: two accepted rows and one rejected (low confidence)."""

    def run(self, stage, call, on_progress, cancelled):
        if stage != "validate":
            return super().run(stage, call, on_progress, cancelled)
        self.calls.append((stage, call))
        rows = [{"input": "match report x", "output": "sport", "id": "a1"},
                {"input": "new phone y", "output": "tech", "id": "a2"}]
        rejected = [{"line": 3, "reason": "low_confidence", "detail": "p 0.2 < 0.5",
                     "example": {"input": "a vote today", "output": "politics", "id": "r1"}}]
        prefix = call.output_prefix
        return "op-val", ValidationOutcome(
            accepted=self.store.put_bytes(f"{prefix}/accepted.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()),
            rejected=self.store.put_bytes(f"{prefix}/rejected.jsonl",
                                          "".join(json.dumps(r) + "\n" for r in rejected).encode()),
            report=self._art(f"{prefix}/report.json", {"labels": {}}), accepted_count=2)


def test_a_retune_trains_on_the_reviewed_rows_and_freezes_the_review(env) -> None:
    from services.pipeline.review import ReviewDecisions

    store, make, _ = env
    workers = ReviewedWorkers(store)
    source = make(workers, {"serving": {"deploy": False}}, request_id="reviewed")
    source.run()
    decisions = ReviewDecisions(rows={"a1": "reject", "r1": "accept"}, test_approved=True)
    retune = make(workers, {"serving": {"deploy": False}}, request_id="retune-of-reviewed", retune_of=source.state,
                  review=decisions)
    decisions.rows["a2"] = "reject"  # a later edit of the source's review does not reach this retune
    retune.run()
    train = workers.request("train")
    trained = [json.loads(line) for line in store.read_bytes(train.train).decode().splitlines()]
    assert [row["id"] for row in trained] == ["a2", "r1"]
    review = retune.state.stage("train").summary["review"]
    assert (review["rejected_by_hand"], review["accepted_by_hand"], review["test_approved"]) == (1, 1, True)
    assert review["source"] == source.state.name and retune.state.review["rows"] == {"a1": "reject", "r1": "accept"}
    # The seed-only baseline is not touched by the review: it trains on the seeds.
    assert workers.request("train_seed_only").train.uri == source.inputs["seeds"].uri


def test_traces_become_seeds_and_the_test_set_that_every_later_stage_uses(env) -> None:
    store, make, seeds = env
    teams = ["Leeds", "Arsenal", "Celtic", "Juventus", "Benfica", "Porto", "Napoli", "Everton", "Ajax", "Lyon"]
    makers = ["Nokia", "Samsung", "Xiaomi", "Huawei", "Motorola", "Sony", "Google", "Apple", "Oppo", "Vivo"]
    topics = ["taxes", "schools", "railways", "pensions", "fishing", "housing", "prisons", "farming", "energy",
              "defence"]
    texts = [f"{teams[i]} scored a goal in minute {10 + i * 7}" for i in range(10)] + \
            [f"{makers[i]} shows a phone made of {['glass', 'steel', 'wood', 'carbon', 'clay'][i % 5]}"
             f" for {2000 + i}" for i in range(10)] + \
            [f"the politics of {topics[i]}: MPs vote tonight" for i in range(10)]
    gold = ["sport"] * 10 + ["tech"] * 10 + ["politics"] * 10
    lines = [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}]}
             for text, label in zip(texts, gold)]
    lines.append(lines[0])  # a duplicate
    lines.append({"messages": [{"role": "user", "content": "a new match report of some kind"}]})  # teacher: "?"
    traces = store.put_bytes("inputs/traces.jsonl", "".join(json.dumps(r) + "\n" for r in lines).encode())
    workers = ScriptedWorkers(store)
    runner = make(workers, {"traces": {"test_fraction": 0.2}},
                  inputs={"seeds": seeds, "test": None, "context": None, "traces": traces})
    result = runner.run()
    assert workers.stages()[:2] == ["generator.Label", "generator.Label"]  # greedy + one sample, no disagreement
    summary = runner.state.stage("traces").summary
    assert summary["read"] == 32 and summary["dropped_by_reason"]["duplicate"] == 1, summary
    assert summary["dropped_by_reason"]["teacher_invalid"] == 1, summary
    assert (summary["test"], summary["seeds"], summary["with_old_answer"], summary["old_answer_agrees"]) == (6, 24, 30, 30), summary
    artifacts = runner.state.stage("traces").artifacts
    seeds_rows = store.read_bytes(Artifact.from_dict(artifacts["seeds"])).decode().splitlines()
    assert len(seeds_rows) == len(SEEDS) + 24  # the task's own seeds first, then the traces'
    assert json.loads(seeds_rows[-1])["metadata"]["source"] == "trace"
    assert workers.request("generate").seeds.uri == artifacts["seeds"]["uri"]
    assert workers.request("train_seed_only").train.uri == artifacts["seeds"]["uri"]
    assert workers.request("evaluate").test.uri == artifacts["test"]["uri"]
    assert any("labelled by the teacher" in w for w in result["job"]["warnings"])


def test_a_traces_stage_killed_between_teacher_passes_redoes_only_the_unfinished_ones(env) -> None:
    store, make, seeds = env
    lines = [{"messages": [{"role": "user", "content": f"{team} scored a goal in minute {10 + i * 7}"}]}
             for i, team in enumerate(["Leeds", "Arsenal", "Celtic", "Juventus", "Benfica", "Porto", "Napoli",
                                       "Everton", "Ajax", "Lyon", "Roma", "Lazio"])]
    traces = store.put_bytes("inputs/traces-kill.jsonl", "".join(json.dumps(r) + "\n" for r in lines).encode())
    inputs = {"seeds": seeds, "test": None, "context": None, "traces": traces}

    class DiesOnSecondPass(ScriptedWorkers):
        def label(self, call):
            if sum(stage == "generator.Label" for stage, _ in self.calls) == 1:
                raise KeyboardInterrupt  # the pipeline process dies during the second teacher pass
            return super().label(call)

    with pytest.raises(KeyboardInterrupt):
        make(DiesOnSecondPass(store), request_id="traces-kill", inputs=inputs).run()
    workers = ScriptedWorkers(store)
    runner = make(workers, request_id="traces-kill", inputs=inputs)
    runner.run()
    assert [s for s in workers.stages() if s == "generator.Label"] == ["generator.Label"]  # pass 1 was kept
    assert runner.state.stage("traces").state == SUCCEEDED


def test_a_job_without_traces_skips_the_stage(env) -> None:
    store, make, _ = env
    runner = make(ScriptedWorkers(store))
    runner.run()
    assert runner.state.stage("traces").state == SKIPPED


def test_a_sharded_generation_runs_its_shards_at_once_and_merges_them_in_order(env) -> None:
    store, make, _ = env
    workers = ScriptedWorkers(store)
    runner = make(workers, {"generation": {"target_count": 100, "shards": 3}})
    runner.run()
    shards = [call for stage, call in workers.calls if stage == "generate"]
    assert sorted(c.target_count for c in shards) == [33, 33, 34]
    assert len({c.request_id for c in shards}) == 3 and len({c.output_prefix for c in shards}) == 3
    offsets = sorted(c.index_offset for c in shards)
    assert offsets == [0, 1100, 2200]  # 10 x target + 100 apart: no two shards share a candidate
    stage = runner.state.stage("generate")
    merged = [json.loads(line) for line in store.read_bytes(Artifact.from_dict(stage.artifacts["examples"]))
              .decode().splitlines()]
    indices = [r["metadata"]["index"] for r in merged]
    assert len(merged) == 100 and indices == sorted(indices) and len(set(indices)) == 100  # none lost or twice
    assert stage.summary["generated"] == 100 and stage.summary["shards"] == 3
    assert stage.operation.count(",") == 2
    assert workers.request("validate").examples.uri == stage.artifacts["examples"]["uri"]
