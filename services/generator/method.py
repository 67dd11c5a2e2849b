"""The generation method, as plain deterministic functions of (task, seeds, row index, seed):

1. plan a row: which seeds to show, which label to aim at (classification is balanced
   round-robin over the labels), which diversity mutation, which user topic or context passage;
2. the teacher writes a new input from a few-shot list of seed inputs (``render_input_prompt``);
3. the new input is cleaned and refused if it copies a seed or an earlier row;
4. the teacher labels it under the task's structured-output constraint (``render_label_prompt``).

Everything a row depends on is derived from ``row_seed(random_seed, index)``, so a resumed job
recomputes exactly the rows it had not written yet."""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

from services.common.taskspec import Example, TaskSpec, normalize_text
from services.generator.prompting import mutations, one_line, render_input_prompt, render_label_prompt

# How often each mutation is drawn: keeping the seeds' own style is as likely as any two others.
_MUTATION_WEIGHTS = {"none": 2.0}
MIN_INPUT_CHARS = 3
_LEADING_LABEL = re.compile(r"^(?:example|text|request|question|input)\s*\d*\s*[:.)-]\s*", re.IGNORECASE)


def row_seed(random_seed: int, index: int, stage: str = "") -> int:
    """A 31-bit seed for one row and stage, independent of batching and of other rows."""
    digest = hashlib.sha256(f"{random_seed}:{index}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class RowPlan:
    index: int
    seed: int
    label_seed: int
    target_label: str = ""
    mutation: str = "none"
    topic: str = ""
    passage: str = ""
    input_shots: list[str] = field(default_factory=list)
    label_shots: list[Example] = field(default_factory=list)
    input_prompt: str = ""

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"index": self.index, "seed": self.seed, "mutation": self.mutation}
        if self.target_label:
            meta["target_label"] = self.target_label
        if self.topic:
            meta["topic"] = self.topic
        if self.passage:
            meta["passage"] = self.passage[:200]
        return meta


def pick_label_shots(spec: TaskSpec, seeds: list[Example], rng: random.Random, count: int) -> list[Example]:
    """Few-shot examples for the labelling prompt. For classification one per label first (so
    every label is seen), then more at random; shuffled so no label is always last."""
    if spec.type != "classification":
        shots = rng.sample(seeds, min(count, len(seeds)))
        return shots
    by_label: dict[str, list[Example]] = {}
    for seed in seeds:
        by_label.setdefault(seed.output, []).append(seed)
    chosen = [rng.choice(by_label[label]) for label in spec.labels if by_label.get(label)]
    rest = [s for s in seeds if s not in chosen]
    chosen += rng.sample(rest, max(0, min(count - len(chosen), len(rest))))
    rng.shuffle(chosen)
    return chosen


def plan_row(spec: TaskSpec, seeds: list[Example], context: list[str], index: int, random_seed: int,
             input_shots: int = 6, label_shots: list[Example] | None = None) -> RowPlan:
    """``label_shots`` is the job's fixed labelling few-shot set (one prompt prefix for every
    row, which the engine's prefix cache reuses); None draws one for this row."""
    rng = random.Random(row_seed(random_seed, index, "plan"))
    plan = RowPlan(index=index, seed=row_seed(random_seed, index, "input"),
                   label_seed=row_seed(random_seed, index, "label"))
    pool = seeds
    if spec.type == "classification":
        plan.target_label = spec.labels[index % len(spec.labels)]
        pool = [s for s in seeds if s.output == plan.target_label] or seeds
    names = list(mutations())
    plan.mutation = rng.choices(names, weights=[_MUTATION_WEIGHTS.get(n, 1.0) for n in names])[0]
    passages = list(context)
    if spec.type == "qa-open-book" and not passages:
        passages = [s.context for s in seeds if s.context]
    if spec.type == "qa-open-book":
        plan.passage = rng.choice(passages)  # the question must come with its passage
    elif spec.topics and (not passages or rng.random() < 0.5):
        plan.topic = rng.choice(spec.topics)
    elif passages and rng.random() < 0.5:
        plan.passage = rng.choice(passages)
    plan.input_shots = [s.input for s in rng.sample(pool, min(input_shots, len(pool)))]
    plan.label_shots = label_shots if label_shots is not None else pick_label_shots(spec, seeds, rng, 8)
    plan.input_prompt = render_input_prompt(spec, plan.input_shots, label=plan.target_label,
                                            mutation=plan.mutation, topic=plan.topic, passage=plan.passage)
    return plan


def label_prompt(spec: TaskSpec, plan: RowPlan, text: str) -> str:
    return render_label_prompt(spec, plan.label_shots, text, context=plan.passage if spec.type == "qa-open-book" else "")


def clean_input(raw: str) -> str:
    """The teacher's new input: its first line, without a repeated "Example 7:" or quotes."""
    text = _unquote(raw.strip().split("\n", 1)[0].strip())
    return one_line(_unquote(_LEADING_LABEL.sub("", text).strip()))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def input_problem(text: str, seen: dict[str, str]) -> str | None:
    """Why a new input cannot be used (None when it can). ``seen`` maps normalized inputs of the
    seeds and earlier rows to where they came from."""
    if len(text) < MIN_INPUT_CHARS:
        return "empty input" if not text else f"input too short ({len(text)} characters)"
    key = normalize_text(text)
    if not key:
        return "input has no words"
    if key in seen:
        return f"input repeats {seen[key]}"
    return None
