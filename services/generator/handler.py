"""The generation job: N new rows for a task, written batch by batch, resumable.

Crash safety. Rows are appended to ``examples.jsonl`` / ``rejected.jsonl`` in the operation's
work directory and fsynced per batch (rejected first, then examples, then ``state.json``).
Every row carries its candidate ``metadata.index``; row *i* depends only on (random seed, i) and
on the rows before it. On restart the job reads what is on disk: the next candidate is the one
after the last row written, rejected rows of a batch whose examples never reached the disk are
dropped, and the loop goes on to the target. Nothing is duplicated and nothing written is lost.

Before the first row, classification jobs measure the teacher on the seeds and choose where row
labels come from (``label_source.py``); that choice is written to ``label_source.json`` once and
read back on restart, so a resumed job neither asks the teacher again nor labels differently."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.common.artifacts import Artifact
from services.common.atomic import write_json_atomic
from services.common.budget import budget_for
from services.common.jsonl import JsonlAppender, read_jsonl, repair_tail, write_jsonl_atomic
from services.common.taskspec import Example, TaskSpec, example_id, normalize_text
from services.generator.backend import Backend, CompletionRequest
from services.generator.inputs import load_context, load_seeds
from services.generator.label_source import (
    CHOICE_FILE,
    LabelChoice,
    choose_label_source,
    label_distribution,
    measure_on_seeds,
)
from services.generator.labeling import (
    LabelOutcome,
    answer_budget,
    content_free_prior,
    fixed_label_shots,
    label_prompts,
)
from services.generator.method import RowPlan, clean_input, input_problem, label_prompt, plan_row
from services.generator.prompting import DEFAULT_INPUT_TOKENS, input_stop, one_line
from services.generator.settings import GenerationSettings

log = logging.getLogger(__name__)

KIND = "generation"
EXAMPLES = "examples.jsonl"
REJECTED = "rejected.jsonl"
STATE = "state.json"


def max_candidates(target: int) -> int:
    """Give up when this many candidates yielded fewer rows than the target (a teacher that
    only repeats the seeds would otherwise loop for ever)."""
    return 10 * target + 100


@dataclass
class GenerationState:
    next_index: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self), indent=None)

    @classmethod
    def load(cls, path: Path) -> GenerationState:
        if not path.exists():
            return cls()
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            return cls()  # a torn state file: the JSONL files are the truth anyway


@dataclass
class Progress:
    """What was on disk when the job (re)started."""

    state: GenerationState
    rows: list[dict[str, Any]]
    rejected: int
    seen: dict[str, str] = field(default_factory=dict)


def _index(row: dict[str, Any]) -> int:
    return int((row.get("metadata") or {}).get("index", row.get("index", -1)))


def recover(work_dir: Path, seeds: list[Example]) -> Progress:
    """Read what a previous run of this job wrote and repair it to a consistent prefix."""
    examples_path, rejected_path = work_dir / EXAMPLES, work_dir / REJECTED
    for path in (examples_path, rejected_path):
        repair_tail(path)
    state = GenerationState.load(work_dir / STATE)
    rows = read_jsonl(examples_path) if examples_path.exists() else []
    last = max((_index(r) for r in rows), default=-1)
    state.next_index = max(state.next_index, last + 1)
    rejected = read_jsonl(rejected_path) if rejected_path.exists() else []
    kept = [r for r in rejected if _index(r) < state.next_index]
    if len(kept) != len(rejected):  # a batch died between its two appends: it is redone
        write_jsonl_atomic(rejected_path, kept)
    seen = {normalize_text(s.input): f"seed {s.metadata.get('line', '?')}" for s in seeds}
    for row in rows:
        seen.setdefault(normalize_text(row["input"]), f"row {_index(row)}")
    return Progress(state, rows, len(kept), seen)


class GenerationJob:
    """One run (or resumed run) of a generation operation."""

    def __init__(self, spec: TaskSpec, seeds: list[Example], context: list[str], settings: GenerationSettings,
                 backend: Backend, work_dir: Path, teacher: str = "", index_offset: int = 0) -> None:
        self.spec = spec
        self.index_offset = index_offset  # a shard's first candidate index
        self.seeds = seeds
        self.context = context
        self.settings = settings
        self.backend = backend
        self.work_dir = work_dir
        self.teacher = teacher or backend.name
        self.label_shots = fixed_label_shots(spec, seeds, settings.random_seed, settings.label_shots)
        self._prior: dict[str, float] | None = None
        self._choice: LabelChoice | None = None
        # Token budgets fit to the seeds (unless set): inputs and answers longer than a fixed cap
        # would otherwise be cut, and a cut row is refused below.
        self.input_budget = settings.input_max_tokens or budget_for(
            (backend.count_tokens(one_line(e.input)) for e in seeds), DEFAULT_INPUT_TOKENS)
        self.label_budget = answer_budget(backend, spec, seeds, settings.label_max_tokens)

    def prior(self) -> dict[str, float] | None:
        """The teacher's content-free label prior (classification, computed once per run)."""
        if self.spec.type != "classification" or not self.settings.calibrate_labels:
            return None
        if self._prior is None:
            self._prior = content_free_prior(self.backend, self.spec, self.label_shots)
        return self._prior

    def label_choice(self) -> LabelChoice:
        """Where row labels come from: read back from the work directory when a previous run of
        this job chose already, else measured on the seeds (classification) and written there."""
        if self._choice is None:
            path = self.work_dir / CHOICE_FILE
            self._choice = LabelChoice.load(path)
            if self._choice is not None:
                log.info("label source %s (from %s)", self._choice.source, path)
            else:
                check = None
                if self.spec.type == "classification":
                    # Measured on the gold seeds: seeds the pipeline made from traces carry the
                    # teacher's own labels, and agreeing with itself says nothing of its accuracy.
                    gold = [s for s in self.seeds if s.metadata.get("source") != "trace"] or self.seeds
                    check = measure_on_seeds(self.backend, self.spec, gold, self.label_shots, self.settings,
                                             self.label_budget, prior=self.prior())
                self._choice = choose_label_source(self.spec, self.settings, check)
                self.work_dir.mkdir(parents=True, exist_ok=True)
                self._choice.save(path)
                log.info("label source %s: %s", self._choice.source, self._choice.reason)
        return self._choice

    def _classified(self, plan: RowPlan, outcome: LabelOutcome, meta: dict[str, Any]) -> tuple[str, str | None]:
        """A classification row's output under the job's label source, and why it is refused
        (None when kept). Fills in the teacher's evidence, which every row carries whatever its
        source: ``teacher_label``, ``label_source``, ``label_probability`` (of the output) and
        ``choice_probabilities`` (the whole calibrated distribution, for soft-label training)."""
        assert outcome.output is not None
        source = self.label_choice().source
        teacher_label, target = outcome.output, plan.target_label
        output = target if source == "target" and target else teacher_label
        meta["teacher_label"] = teacher_label
        meta["label_source"] = "target" if source == "target" and target else "teacher"
        if target:
            meta["label_agrees_with_target"] = teacher_label == target
        distribution = label_distribution(self.spec, outcome.completion.choice_probabilities)
        if distribution:
            meta["label_probability"] = distribution.get(output, 0.0)
            meta["choice_probabilities"] = distribution
        if source == "agreement" and target and teacher_label != target:
            return output, (f"teacher label {teacher_label!r} disagrees with the target label {target!r} "
                            "(generation.label_source: agreement)")
        return output, None

    # ----- one batch ------------------------------------------------------------------------
    def run_batch(self, start: int, count: int, seen: dict[str, str], need: int
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int, int]:
        """Candidates start..start+count-1 → (rows, rejected, next index, prompt tokens,
        completion tokens). Stops adding rows once ``need`` are accepted."""
        s = self.settings
        plans = [plan_row(self.spec, self.seeds, self.context, i, s.random_seed, s.input_shots, self.label_shots)
                 for i in range(start, start + count)]
        inputs = self.backend.complete(CompletionRequest(
            prompts=[p.input_prompt for p in plans], max_tokens=self.input_budget, temperature=s.temperature,
            top_p=s.top_p, seeds=[p.seed for p in plans], stop=input_stop(self.spec)))
        prompt_tokens = sum(c.prompt_tokens for c in inputs)
        completion_tokens = sum(c.completion_tokens for c in inputs)
        texts = [clean_input(c.text) for c in inputs]
        # Inputs that copy a seed or an earlier batch are refused before the teacher labels them.
        early = [f"input hit input_max_tokens ({self.input_budget}) and was cut; raise generation.input_max_tokens"
                 if c.finish_reason == "length" else input_problem(text, seen) for c, text in zip(inputs, texts)]
        to_label = [i for i, problem in enumerate(early) if problem is None]
        outcomes = label_prompts(self.backend, self.spec, [label_prompt(self.spec, plans[i], texts[i]) for i in to_label],
                                 [plans[i].label_seed for i in to_label], temperature=s.label_temperature,
                                 max_tokens=self.label_budget, prior=self.prior())
        labelled = dict(zip(to_label, outcomes))
        prompt_tokens += sum(o.completion.prompt_tokens for o in outcomes)
        completion_tokens += sum(o.completion.completion_tokens for o in outcomes)
        rows: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        next_index = start + count
        for i, plan in enumerate(plans):
            if len(rows) == need:  # target reached: later candidates are redone by nobody
                next_index = plan.index
                break
            meta = plan.metadata()
            meta["teacher"] = self.teacher
            problem = early[i] or input_problem(texts[i], seen)  # within-batch repeats, in index order
            outcome = labelled.get(i)
            if problem is None and outcome is not None and outcome.output is None:
                problem = f"teacher answer unusable: {outcome.error}"
            output = outcome.output if outcome is not None else None
            if problem is None and outcome is not None and self.spec.type == "classification":
                output, problem = self._classified(plan, outcome, meta)
            if problem is not None:
                rejected.append({"index": plan.index, "input": texts[i], "raw_input": inputs[i].text,
                                 "raw_output": outcome.completion.text if outcome else "", "reason": problem,
                                 "metadata": meta})
                continue
            assert output is not None
            context = plan.passage if self.spec.type == "qa-open-book" else ""
            seen[normalize_text(texts[i])] = f"row {plan.index}"
            example = Example(input=texts[i], output=output, context=context,
                              id=example_id(texts[i], context), metadata=meta)
            rows.append(example.to_dict())
        return rows, rejected, next_index, prompt_tokens, completion_tokens

    # ----- the loop ---------------------------------------------------------------------------
    def run(self, progress: Callable[..., None], check_cancelled: Callable[[], None]) -> dict[str, Any]:
        s = self.settings
        self.work_dir.mkdir(parents=True, exist_ok=True)
        rec = recover(self.work_dir, self.seeds)
        state, generated, rejected_count, seen = rec.state, len(rec.rows), rec.rejected, rec.seen
        state.next_index = max(state.next_index, self.index_offset)
        if generated:
            log.info("resuming generation at %d/%d rows (candidate %d)", generated, s.target, state.next_index)
        started = time.time() - state.seconds
        choice = self.label_choice()
        # The seed check's tokens are its own (label_source.json), the batches' are in state.json.
        check_prompt = choice.check.prompt_tokens if choice.check else 0
        check_completion = choice.check.completion_tokens if choice.check else 0

        def tokens() -> tuple[int, int]:
            return state.prompt_tokens + check_prompt, state.completion_tokens + check_completion
        shortfall = ""
        with JsonlAppender(self.work_dir / EXAMPLES) as good, JsonlAppender(self.work_dir / REJECTED) as bad:
            while generated < s.target:
                check_cancelled()
                tried = state.next_index - self.index_offset
                if tried >= max_candidates(s.target):
                    # Not a failure: the seeds alone can still train a student, and the pipeline
                    # trains on them plus whatever rows there are, saying so (GenerationResult.shortfall).
                    hint = " or generation.label_source: target" if choice.source == "agreement" else ""
                    shortfall = (f"the teacher produced only {generated} usable rows of {s.target} from "
                                 f"{tried} candidates ({rejected_count} rejected; see {REJECTED}); "
                                 f"give more varied seeds, a stronger teacher{hint}")
                    log.warning("%s", shortfall)
                    break
                need = s.target - generated
                # The last batch asks for a little more than needed (some candidates are refused).
                count = min(s.batch_size, need + max(1, need // 4))
                batch_start = time.time()
                rows, rejected, next_index, p_tok, c_tok = self.run_batch(state.next_index, count, seen, need)
                bad.write_batch(rejected)
                good.write_batch(rows)
                generated += len(rows)
                rejected_count += len(rejected)
                state.next_index = next_index
                state.prompt_tokens += p_tok
                state.completion_tokens += c_tok
                state.seconds = time.time() - started
                state.save(self.work_dir / STATE)
                batch_seconds = max(1e-6, time.time() - batch_start)
                total_prompt, total_completion = tokens()
                progress(done=generated, total=s.target, stage="generating", unit="examples",
                         counters={"prompt_tokens": total_prompt, "completion_tokens": total_completion,
                                   "tokens": total_prompt + total_completion,
                                   "tokens_per_second": round((p_tok + c_tok) / batch_seconds, 1),
                                   "completion_tokens_per_second": round(c_tok / batch_seconds, 1),
                                   "rejected": rejected_count,
                                   "estimated_cost_usd": s.cost(total_prompt, total_completion)},
                         force=True)
        total_prompt, total_completion = tokens()
        return {"generated": generated, "rejected": rejected_count, "prompt_tokens": total_prompt,
                "completion_tokens": total_completion, "estimated_cost_usd": s.cost(total_prompt, total_completion),
                "seconds": time.time() - started, "shortfall": shortfall, **choice.result_fields()}


@dataclass
class GenerationRequest:
    """One generation, as its request asks for it (read by the servicer module from protobuf)."""

    spec: TaskSpec
    settings: GenerationSettings  # the request's fields over task.yaml's generation section
    seeds: Artifact
    context: Artifact | None = None
    index_offset: int = 0  # a shard's first candidate index (StartGenerationRequest.index_offset)


def run_generation(ctx: Any, request: GenerationRequest, backend_for: Callable[[TaskSpec], Backend]) -> dict[str, Any]:
    """JobRunner handler of ``generation`` operations (ctx: an OperationContext)."""
    spec, settings = request.spec, request.settings
    seeds = load_seeds(ctx.store, request.seeds, spec, ctx.work_dir)
    context = load_context(ctx.store, request.context, ctx.work_dir)
    ctx.progress(done=None, total=settings.target, stage="starting teacher", unit="examples", force=True)
    backend = backend_for(spec)
    job = GenerationJob(spec, seeds, context, settings, backend, ctx.work_dir / "out", teacher=backend.name,
                        index_offset=request.index_offset)
    summary = job.run(ctx.progress, ctx.check_cancelled)
    ctx.progress(stage="storing", force=True)
    examples = ctx.store.put_file(ctx.output_key(EXAMPLES), job.work_dir / EXAMPLES)
    rejected = ctx.store.put_file(ctx.output_key(REJECTED), job.work_dir / REJECTED)
    return {
        "examples": examples.to_dict(),
        "rejected": rejected.to_dict(),
        "generated": summary["generated"],
        "rejected_count": summary["rejected"],
        "prompt_tokens": summary["prompt_tokens"],
        "completion_tokens": summary["completion_tokens"],
        "estimated_cost_usd": summary["estimated_cost_usd"],
        "seconds": summary["seconds"],
        "teacher": backend.name,
        "shortfall": summary.get("shortfall", ""),
        # The weak-teacher defence: the teacher's seed accuracy and where row labels came from.
        **job.label_choice().result_fields(),
    }
