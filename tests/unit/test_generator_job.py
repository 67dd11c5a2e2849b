"""The generation job's bookkeeping: batches, resume after a crash, rejected rows, cancel, cost.

The teacher here is a small scripted stand-in behind the same Backend interface (the real
teacher, vLLM with a catalog model, is exercised in tests/integration/test_generator_service.py);
it lets these tests produce exact garbage and exact crashes, which a real model cannot be asked
for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import Cancelled, FailedPrecondition
from services.common.jsonl import read_jsonl
from services.common.taskspec import Example, TaskSpec, check_output, load_task, normalize_text
from services.generator.backend import Completion, CompletionRequest
from services.generator.job import EXAMPLES, REJECTED, STATE, GenerationJob
from services.generator.settings import GenerationSettings

TASKS = Path(__file__).resolve().parents[1] / "data" / "generator_tasks"


class ScriptedTeacher:
    """Input prompts → "new request number <seed>" (or a copy of a seed every 7th row); label
    prompts → a valid answer, or garbage every 5th row. Deterministic in the per-row seed."""

    name = "scripted"

    def __init__(self, labels: list[str] | None = None, copy_seed: str = "") -> None:
        self.labels = labels or []
        self.copy_seed = copy_seed
        self.calls = 0

    def complete(self, request: CompletionRequest) -> list[Completion]:
        self.calls += 1
        out = []
        for i, prompt in enumerate(request.prompts):
            seed = request.seed_for(i) or 0
            if request.constraint.kind == "none":
                text = self.copy_seed if self.copy_seed and seed % 7 == 0 else f" new request number {seed}\n"
            elif seed % 5 == 0:
                text = '{"name": "unterminated'
            elif request.constraint.kind == "choice":
                text = request.constraint.choices[seed % len(request.constraint.choices)]
            else:
                text = json.dumps({"name": f"Person {seed}", "city": "Rome"})
            probs = {c: 1.0 / len(request.constraint.choices) for c in request.constraint.choices} \
                if request.choice_logprobs else {}
            words, finish = text.split(" "), "stop"
            if 0 < request.max_tokens < self.count_tokens(text):  # a real engine stops at the budget
                text, finish = " ".join(words[:request.max_tokens]), "length"
            out.append(Completion(text=text, prompt_tokens=len(str(prompt)) // 4, completion_tokens=7,
                                  finish_reason=finish, choice_probabilities=probs))
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split(" "))  # one token per space-separated piece

    def close(self) -> None:
        pass


def make_job(tmp_path: Path, task: str = "intent", target: int = 40, **overrides) -> GenerationJob:
    bundle = load_task(TASKS / task)
    settings = GenerationSettings(target=target, batch_size=8, random_seed=11, price_prompt_per_1m=2.0,
                                  price_completion_per_1m=10.0, **overrides)
    teacher = ScriptedTeacher(copy_seed=bundle.seeds[0].input)
    return GenerationJob(bundle.spec, bundle.seeds, bundle.context, settings, teacher, tmp_path / "out")


def noop(**_: object) -> None:
    pass


def test_generates_target_rows_with_rejects_and_cost(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    events = []
    summary = job.run(lambda **kw: events.append(kw), lambda: None)
    rows = read_jsonl(job.work_dir / EXAMPLES)
    rejected = read_jsonl(job.work_dir / REJECTED)
    assert summary["generated"] == len(rows) == 40
    assert len({r["id"] for r in rows}) == 40
    seeds = {normalize_text(s.input) for s in job.seeds}
    assert not seeds & {normalize_text(r["input"]) for r in rows}  # seeds are never copied
    for row in rows:
        check_output(job.spec, row["output"])
        assert row["metadata"]["teacher"] == "scripted" and "label_probability" in row["metadata"]
    reasons = {r["reason"].split(":")[0] for r in rejected}
    assert "teacher answer unusable" in reasons and any(r["reason"].startswith("input repeats seed") for r in rejected)
    assert all(r["raw_output"] for r in rejected if r["reason"].startswith("teacher answer"))
    indices = sorted([r["metadata"]["index"] for r in rows] + [r["index"] for r in rejected])
    assert indices == list(range(len(indices)))  # every candidate accounted for exactly once
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0
    assert summary["estimated_cost_usd"] == pytest.approx(
        (summary["prompt_tokens"] * 2.0 + summary["completion_tokens"] * 10.0) / 1e6)
    assert events[-1]["done"] == 40 and events[-1]["total"] == 40
    assert events[-1]["counters"]["tokens"] == summary["prompt_tokens"] + summary["completion_tokens"]


def test_resume_after_torn_write_matches_uninterrupted_run(tmp_path: Path) -> None:
    reference = make_job(tmp_path / "ref")
    reference.run(noop, lambda: None)
    expected = read_jsonl(reference.work_dir / EXAMPLES)

    job = make_job(tmp_path / "crash")
    batches = {"n": 0}

    def crash_after_three_batches(**_: object) -> None:
        batches["n"] += 1
        if batches["n"] == 3:
            raise KeyboardInterrupt  # the process dies here
    with pytest.raises(KeyboardInterrupt):
        job.run(crash_after_three_batches, lambda: None)
    before = (job.work_dir / EXAMPLES).read_bytes()
    # A crash mid-append of the next batch: a torn last line, and a state file that lags behind.
    with open(job.work_dir / EXAMPLES, "ab") as handle:
        handle.write(b'{"id": "torn", "input": "half a ro')
    (job.work_dir / STATE).write_text(json.dumps({"next_index": 0}))
    resumed = make_job(tmp_path / "crash")
    summary = resumed.run(noop, lambda: None)
    rows = read_jsonl(resumed.work_dir / EXAMPLES)
    assert (resumed.work_dir / EXAMPLES).read_bytes().startswith(before)  # written rows are never rewritten
    assert summary["generated"] == len(rows) == 40
    assert [r["id"] for r in rows] == [r["id"] for r in expected]  # same data as without the crash
    rejected = read_jsonl(resumed.work_dir / REJECTED)
    assert len({r["index"] for r in rejected}) == len(rejected)


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    a, b = make_job(tmp_path / "a", target=10), make_job(tmp_path / "b", target=10)
    a.run(noop, lambda: None)
    b.run(noop, lambda: None)
    assert (a.work_dir / EXAMPLES).read_bytes() == (b.work_dir / EXAMPLES).read_bytes()
    c = make_job(tmp_path / "c", target=10)
    c.settings.random_seed = 12
    c.run(noop, lambda: None)
    assert (c.work_dir / EXAMPLES).read_bytes() != (a.work_dir / EXAMPLES).read_bytes()


def test_cancel_between_batches_keeps_rows(tmp_path: Path) -> None:
    job = make_job(tmp_path, target=100)
    state = {"batches": 0}

    def cancel_after_two() -> None:
        state["batches"] += 1
        if state["batches"] > 2:
            raise Cancelled("operation x was cancelled")
    with pytest.raises(Cancelled):
        job.run(noop, cancel_after_two)
    assert 0 < len(read_jsonl(job.work_dir / EXAMPLES)) < 100


def test_extraction_garbage_becomes_rejected_rows(tmp_path: Path) -> None:
    job = make_job(tmp_path, task="contact", target=12)
    job.run(noop, lambda: None)
    rows = read_jsonl(job.work_dir / EXAMPLES)
    assert len(rows) == 12 and all(json.loads(r["output"])["city"] == "Rome" for r in rows)
    rejected = read_jsonl(job.work_dir / REJECTED)
    assert any("not valid JSON" in r["reason"] and r["raw_output"].startswith('{"name"') for r in rejected)


def test_a_teacher_that_only_copies_fails_clearly(tmp_path: Path) -> None:
    job = make_job(tmp_path, target=3)
    job.backend.copy_seed = job.seeds[0].input
    job.backend.complete = lambda request: [Completion(text=job.seeds[0].input) for _ in request.prompts]
    with pytest.raises(FailedPrecondition, match="usable rows"):
        job.run(noop, lambda: None)


def test_budgets_fit_the_seeds_and_cut_rows_are_refused(tmp_path: Path) -> None:
    job = make_job(tmp_path / "default")
    assert job.input_budget == 96  # short seeds: the default
    long_seeds = [Example(input=" ".join(["word"] * 150), output=s.output, id=f"long-{i}")
                  for i, s in enumerate(job.seeds)]
    settings = GenerationSettings(target=8, batch_size=8, random_seed=11)
    fitted = GenerationJob(job.spec, long_seeds, [], settings, ScriptedTeacher(), tmp_path / "long")
    assert fitted.input_budget == 241  # 1.5 x 150 + 16
    assert fitted.label_budget == 19  # every label is " word" (2 pieces): 1.5 x 2 + 16, the labels' not the seeds'

    # A budget below what the teacher writes: every input is cut, and a cut input is never a row.
    cut = GenerationJob(job.spec, job.seeds, [], GenerationSettings(target=8, batch_size=8, random_seed=11,
                                                                     input_max_tokens=2),
                        ScriptedTeacher(), tmp_path / "cut")
    rows, rejected, *_ = cut.run_batch(0, 4, {}, need=4)
    assert rows == [] and len(rejected) == 4
    assert all(r["reason"].startswith("input hit input_max_tokens (2) and was cut") for r in rejected)


def test_free_text_answers_cut_at_max_tokens_are_refused() -> None:
    from services.generator.labeling import answer_budget, label_examples

    bundle = load_task(TASKS / "intent")
    spec = TaskSpec.from_dict({**bundle.spec.to_dict(), "type": "qa-closed-book", "labels": []})
    seeds = [Example(input=f"question {i}", output=" ".join(["answer"] * 100), id=f"s{i}") for i in range(3)]
    teacher = ScriptedTeacher()
    assert answer_budget(teacher, spec, seeds) == 166  # 1.5 x 100 + 16, above the text default of 96
    assert answer_budget(teacher, spec, seeds, requested=5) == 5
    outcomes = label_examples(teacher, spec, seeds, [Example(input="new question", output="")], max_tokens=2)
    assert outcomes[0].output is None and outcomes[0].error.startswith("the answer hit max_tokens (2)")
