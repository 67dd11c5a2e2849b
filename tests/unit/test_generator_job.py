"""The generation job's bookkeeping: batches, resume after a crash, rejected rows, cancel, cost.

The teacher here is a small scripted stand-in behind the same Backend interface (the real
teacher, vLLM with a catalog model, is exercised in tests/integration/test_generator_service.py);
it lets these tests produce exact garbage and exact crashes, which a real model cannot be asked
for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import Cancelled
from services.common.jsonl import read_jsonl
from services.common.taskspec import Example, TaskSpec, check_output, load_task, normalize_text
from services.generator.backend import Completion, CompletionRequest
from services.generator.handler import EXAMPLES, REJECTED, STATE, GenerationJob
from services.generator.label_source import CHOICE_FILE
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


def test_a_teacher_that_only_copies_ends_short_and_says_why(tmp_path: Path) -> None:
    job = make_job(tmp_path, target=3)
    job.backend.copy_seed = job.seeds[0].input
    job.backend.complete = lambda request: [Completion(text=job.seeds[0].input) for _ in request.prompts]
    summary = job.run(noop, lambda: None)  # the seeds alone can still train a student: no failure
    assert summary["generated"] == 0 and "produced only 0 usable rows of 3" in summary["shortfall"]
    assert read_jsonl(job.work_dir / EXAMPLES) == []
    assert job.run(noop, lambda: None)["shortfall"] == summary["shortfall"]  # a rerun ends the same way


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


# ----- the weak-teacher defence (label_source) ------------------------------------------------

def _last_input(prompt: str) -> str:
    return str(prompt).rsplit("Input:", 1)[1].rsplit("\nLabel:", 1)[0].strip()


def _shot_inputs(prompt: str) -> list[str]:
    return [line[len("Input: "):].strip() for line in str(prompt).split("\n")[:-2] if line.startswith("Input: ")]


class LabelTeacher(ScriptedTeacher):
    """Inputs as ScriptedTeacher writes them; labels from ``answer(input)``, with a distribution
    that puts 0.7 on that label. Records the seed inputs it was asked to label, and any prompt
    that showed the input it asks about as one of its own shots."""

    def __init__(self, answer, seeds: list[Example]) -> None:
        super().__init__()
        self.answer = answer
        self.seed_inputs = {s.input for s in seeds}
        self.seed_prompts = 0
        self.own_shot = 0

    def complete(self, request: CompletionRequest) -> list[Completion]:
        if request.constraint.kind != "choice":
            return super().complete(request)
        out = []
        for prompt in request.prompts:
            text = _last_input(prompt)
            self.seed_prompts += text in self.seed_inputs
            self.own_shot += text in _shot_inputs(prompt)
            label = self.answer(text)
            choices = request.constraint.choices
            rest = (1.0 - 0.7) / (len(choices) - 1)
            probs = {c: 0.7 if c.strip() == label else rest for c in choices}
            out.append(Completion(text=" " + label, prompt_tokens=5, completion_tokens=1, finish_reason="stop",
                                  choice_probabilities=probs))
        return out


def label_job(tmp_path: Path, answer, target: int = 24, **overrides) -> GenerationJob:
    """``answer``: input → label, or "gold": the seeds' own labels (any label for a new input)."""
    bundle = load_task(TASKS / "intent")
    if answer == "gold":
        gold = {s.input: s.output for s in bundle.seeds}
        labels = bundle.spec.labels

        def answer(text: str) -> str:
            return gold.get(text, labels[len(text) % len(labels)])
    settings = GenerationSettings(target=target, batch_size=8, random_seed=11, **overrides)
    teacher = LabelTeacher(answer, bundle.seeds)
    return GenerationJob(bundle.spec, bundle.seeds, bundle.context, settings, teacher, tmp_path / "out")


def assert_distribution(job: GenerationJob, meta: dict) -> None:
    probs = meta["choice_probabilities"]
    assert list(probs) == [label.strip() for label in job.spec.labels]
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert meta["label_probability"] == probs[meta["teacher_label"] if meta["label_source"] == "teacher"
                                              else meta["target_label"]]


def test_a_teacher_weak_on_the_seeds_gives_way_to_the_target_label(tmp_path: Path) -> None:
    job = label_job(tmp_path, lambda text: "card")  # one label for everything, like gemma3-270m on 10 intents
    summary = job.run(noop, lambda: None)
    assert job.backend.seed_prompts == len(job.seeds) == 12 and job.backend.own_shot == 0  # leave-one-out
    assert summary["label_source"] == "target"
    assert summary["teacher_seed_count"] == 12 and summary["teacher_seed_accuracy"] == pytest.approx(4 / 12, abs=1e-4)
    assert summary["teacher_seed_label_accuracy"] == {"card": 1.0, "transfer": 0.0, "balance": 0.0}
    assert summary["teacher_trust_accuracy"] == 0.8 and "4/12" in summary["label_source_reason"]
    rows = read_jsonl(job.work_dir / EXAMPLES)
    assert len(rows) == 24
    for row in rows:
        meta = row["metadata"]
        assert row["output"] == meta["target_label"] and meta["label_source"] == "target"
        assert meta["teacher_label"] == "card"
        assert meta["label_agrees_with_target"] == (meta["target_label"] == "card")
        assert_distribution(job, meta)
    assert {r["output"] for r in rows} == set(job.spec.labels)
    assert any(r["metadata"]["teacher_label"] != r["output"] for r in rows)
    # The choice and its evidence are in the work directory next to the rows.
    saved = json.loads((job.work_dir / CHOICE_FILE).read_text())
    assert saved["source"] == "target" and saved["check"]["correct"] == 4


def test_a_teacher_right_on_the_seeds_labels_the_rows(tmp_path: Path) -> None:
    job = label_job(tmp_path, "gold")
    summary = job.run(noop, lambda: None)
    assert summary["label_source"] == "teacher" and summary["teacher_seed_accuracy"] == 1.0
    assert job.backend.own_shot == 0
    rows = read_jsonl(job.work_dir / EXAMPLES)
    assert all(r["output"] == r["metadata"]["teacher_label"] for r in rows)
    assert all(r["metadata"]["label_source"] == "teacher" for r in rows)
    assert any(r["output"] != r["metadata"]["target_label"] for r in rows)  # the teacher's label wins
    for row in rows:
        assert_distribution(job, row["metadata"])


def test_trust_threshold_and_explicit_sources(tmp_path: Path) -> None:
    weak = label_job(tmp_path / "low", lambda text: "card", teacher_trust_accuracy=0.3)
    assert weak.label_choice().source == "teacher"  # 4/12 >= 0.3
    forced = label_job(tmp_path / "forced", lambda text: "card", label_source="teacher")
    forced.run(noop, lambda: None)
    assert forced.label_choice().source == "teacher" and "generation.label_source is teacher" in \
        forced.label_choice().reason
    assert {r["output"] for r in read_jsonl(forced.work_dir / EXAMPLES)} == {"card"}  # today's behaviour
    assert forced.label_choice().check.count == 12  # measured all the same: the report shows it


def test_agreement_keeps_only_rows_where_teacher_and_target_agree(tmp_path: Path) -> None:
    job = label_job(tmp_path, lambda text: "card" if "1" in text else "transfer", label_source="agreement")
    summary = job.run(noop, lambda: None)
    assert summary["label_source"] == "agreement"
    rows = read_jsonl(job.work_dir / EXAMPLES)
    assert len(rows) == 24
    assert all(r["output"] == r["metadata"]["target_label"] == r["metadata"]["teacher_label"] for r in rows)
    assert all(r["metadata"]["label_source"] == "teacher" for r in rows)
    disagreed = [r for r in read_jsonl(job.work_dir / REJECTED) if "agreement" in r["reason"]]
    assert disagreed and summary["rejected"] >= len(disagreed)
    for row in disagreed:
        meta = row["metadata"]
        assert meta["teacher_label"] != meta["target_label"]
        assert row["reason"] == (f"teacher label {meta['teacher_label']!r} disagrees with the target label "
                                 f"{meta['target_label']!r} (generation.label_source: agreement)")
        assert "choice_probabilities" in meta  # the evidence stays with the rejected row too


def test_label_choice_survives_a_resume(tmp_path: Path) -> None:
    job = label_job(tmp_path, lambda text: "card", target=40)
    batches = {"n": 0}

    def crash_after_two_batches(**_: object) -> None:
        batches["n"] += 1
        if batches["n"] == 2:
            raise KeyboardInterrupt  # kill -9 here
    with pytest.raises(KeyboardInterrupt):
        job.run(crash_after_two_batches, lambda: None)
    written = len(read_jsonl(job.work_dir / EXAMPLES))
    assert 0 < written < 40
    # The restarted job's teacher would now pass the check: it must not be asked again.
    resumed = label_job(tmp_path, "gold", target=40)
    summary = resumed.run(noop, lambda: None)
    assert resumed.backend.seed_prompts == 0
    assert summary["label_source"] == "target" and summary["teacher_seed_accuracy"] == pytest.approx(0.3333)
    rows = read_jsonl(resumed.work_dir / EXAMPLES)
    assert len(rows) == 40 and all(r["output"] == r["metadata"]["target_label"] for r in rows)
    assert all(r["metadata"]["label_source"] == "target" for r in rows)


def test_other_task_types_are_labelled_by_the_teacher(tmp_path: Path) -> None:
    job = make_job(tmp_path, task="contact", target=6, label_source="target")
    summary = job.run(noop, lambda: None)
    assert summary["label_source"] == "teacher" and summary["teacher_seed_count"] == 0
    assert "no generation target" in summary["label_source_reason"]
    rows = read_jsonl(job.work_dir / EXAMPLES)
    assert rows and all("label_source" not in r["metadata"] for r in rows)


def test_the_choice_reaches_the_generation_result() -> None:
    from distillery.v1 import generator_pb2

    from services.common.convert import message_from_record
    from services.generator.label_source import LabelChoice, SeedCheck

    check = SeedCheck(count=12, correct=4, label_accuracy={"card": 1.0, "transfer": 0.0}, answers=["card"] * 12)
    choice = LabelChoice("target", "the teacher labelled only 4/12 ...", "auto", 0.8, check)
    result = message_from_record({"generated": 3, **choice.result_fields()}, generator_pb2.GenerationResult())
    assert (result.label_source, result.teacher_seed_count, result.teacher_trust_accuracy) == ("target", 12, 0.8)
    assert result.teacher_seed_accuracy == pytest.approx(0.3333)
    assert dict(result.teacher_seed_label_accuracy) == {"card": 1.0, "transfer": 0.0}
    assert result.label_source_reason.startswith("the teacher labelled only 4/12")


def test_leave_one_out_shots_replace_the_held_out_seed_by_one_of_its_label() -> None:
    import random

    from services.generator.labeling import fixed_label_shots, leave_one_out_shots

    bundle = load_task(TASKS / "intent")
    shots = fixed_label_shots(bundle.spec, bundle.seeds, 11, 8)
    for seed in bundle.seeds:
        chosen = leave_one_out_shots(bundle.seeds, shots, seed, random.Random(0))
        assert seed.input not in {s.input for s in chosen}
        assert {s.output for s in chosen} == set(bundle.spec.labels)  # every label still shown
        assert len(chosen) == len(shots)
        assert [s for s in chosen if s in shots] == [s for s in shots if s.input != seed.input]  # same order
    only = [Example(input="a b c", output="card"), Example(input="d e f", output="transfer")]
    assert leave_one_out_shots(only, only, only[0], random.Random(0)) == [only[1]]  # no spare: dropped


def test_a_shard_writes_the_rows_of_its_own_index_range_and_resumes_there(tmp_path: Path) -> None:
    """generation.shards: shard k starts at its index_offset; row i depends only on (seed, i), so the
    shards of one job never write the same candidate, and a resumed shard stays in its range."""
    bundle = load_task(TASKS / "intent")
    settings = GenerationSettings(target=12, batch_size=8, random_seed=11)

    def shard(offset: int) -> GenerationJob:
        return GenerationJob(bundle.spec, bundle.seeds, bundle.context, settings, ScriptedTeacher(),
                             tmp_path / f"shard-{offset}", index_offset=offset)

    first, second = shard(0), shard(500)
    first.run(noop, lambda: None)
    summary = second.run(noop, lambda: None)
    rows = read_jsonl(second.work_dir / EXAMPLES)
    indices = sorted([r["metadata"]["index"] for r in rows] + [r["index"] for r in read_jsonl(second.work_dir / REJECTED)])
    assert summary["generated"] == len(rows) == 12
    assert indices == list(range(500, 500 + len(indices)))  # its own range, every candidate once
    assert not {r["metadata"]["index"] for r in read_jsonl(first.work_dir / EXAMPLES)} & set(indices)
    again = shard(500).run(noop, lambda: None)  # a restart of the finished shard writes nothing new
    assert again["generated"] == 12 and read_jsonl(second.work_dir / EXAMPLES) == rows
