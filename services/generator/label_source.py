"""The weak-teacher defence (classification): where a generated row's label comes from.

A small teacher can write inputs that fit the label they were generated for and still label them
badly: the bundled 270M teacher gave one label to 212 of 300 rows of a 10-way task and agreed
with the rows' targets on 89 (DESIGN.md, "Quality facts"); the validator then dropped most rows
as low-confidence and nothing was left to train on. So before it labels any row the teacher
labels the seeds, each with the other seeds as shots (``labeling.label_seeds``), and that
accuracy decides (``generation.label_source: auto``) whether a row's output is the teacher's
label or the target the row was generated for. Either way every row keeps the teacher's
calibrated label distribution as evidence (``metadata.choice_probabilities``), which the
validator and a soft-label trainer can use.

The measurement and the choice are made once per job and written to ``label_source.json`` in its
work directory before the first row: a resumed job reads them back instead of asking the
teacher again, so all its rows are labelled the same way."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.common.atomic import write_json_atomic
from services.common.taskspec import Example, TaskSpec
from services.generator.backend import Backend
from services.generator.labeling import label_seeds
from services.generator.settings import GenerationSettings

CHOICE_FILE = "label_source.json"
# What "auto" resolves to, or what was asked for explicitly.
ROW_SOURCES = ("teacher", "target", "agreement")


@dataclass
class SeedCheck:
    """How the teacher labelled the seeds, leave-one-out."""

    count: int = 0
    correct: int = 0
    # Per gold label: the share of its seeds the teacher labelled right.
    label_accuracy: dict[str, float] = field(default_factory=dict)
    # The teacher's label for each seed, in seed order ("" where its answer was unusable).
    answers: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else 0.0


def measure_on_seeds(backend: Backend, spec: TaskSpec, seeds: list[Example], shots: list[Example],
                     settings: GenerationSettings, max_tokens: int,
                     prior: dict[str, float] | None = None) -> SeedCheck:
    """The teacher's leave-one-out accuracy on the seeds, labelled exactly as rows are
    (same shots but the seed itself, same prior, constraint, temperature and budget). An
    unusable answer counts as wrong: generation would reject that row."""
    outcomes = label_seeds(backend, spec, seeds, shots, settings.random_seed, temperature=settings.label_temperature,
                           max_tokens=max_tokens, prior=prior)
    answers = [o.output or "" for o in outcomes]
    per_label: dict[str, list[int]] = {}
    for seed, answer in zip(seeds, answers):
        hits = per_label.setdefault(seed.output, [0, 0])
        hits[0] += answer == seed.output
        hits[1] += 1
    return SeedCheck(count=len(seeds), correct=sum(a == s.output for s, a in zip(seeds, answers)),
                     label_accuracy={label: round(h / n, 4) for label, (h, n) in per_label.items()},
                     answers=answers,
                     prompt_tokens=sum(o.completion.prompt_tokens for o in outcomes),
                     completion_tokens=sum(o.completion.completion_tokens for o in outcomes))


@dataclass
class LabelChoice:
    """Where this job's row labels come from, and why."""

    source: str  # "teacher" | "target" | "agreement"
    reason: str
    requested: str = "auto"  # generation.label_source as set
    threshold: float = 0.0  # generation.teacher_trust_accuracy
    check: SeedCheck | None = None  # None: not measured (not a classification task)

    def result_fields(self) -> dict[str, Any]:
        """The GenerationResult fields that report the choice and its evidence (a seed count of 0
        means the teacher was not measured)."""
        check = self.check or SeedCheck()
        return {"teacher_seed_accuracy": round(check.accuracy, 4), "teacher_seed_count": check.count,
                "teacher_seed_label_accuracy": dict(check.label_accuracy),
                "teacher_trust_accuracy": self.threshold, "label_source": self.source,
                "label_source_reason": self.reason}

    def save(self, path: Path) -> None:
        """Written whole or not at all (a torn file would make a resumed job choose again)."""
        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> LabelChoice | None:
        """The choice a previous run of this job made, or None when there is none to read."""
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            raw_check = data.pop("check", None)
            choice = cls(**data, check=SeedCheck(**raw_check) if raw_check else None)
        except (ValueError, TypeError, AttributeError):
            return None
        return choice if choice.source in ROW_SOURCES else None


def choose_label_source(spec: TaskSpec, settings: GenerationSettings, check: SeedCheck | None) -> LabelChoice:
    """``auto``: the teacher's label when it labelled at least ``teacher_trust_accuracy`` of the
    seeds right, else the row's target label. Only classification rows have a target, so every
    other task type is labelled by the teacher, whatever was asked."""
    requested, threshold = settings.label_source, settings.teacher_trust_accuracy
    if spec.type != "classification" or check is None:
        return LabelChoice("teacher", f"{spec.type} rows have no generation target: the teacher's answer is the "
                           "label", requested, threshold, None)
    measured = f"{check.correct}/{check.count} seeds right leave-one-out ({check.accuracy:.2f})"
    if requested != "auto":
        return LabelChoice(requested, f"generation.label_source is {requested}; the teacher labelled {measured}",
                           requested, threshold, check)
    if check.count and check.accuracy >= threshold:
        return LabelChoice("teacher", f"the teacher labelled {measured}, at least teacher_trust_accuracy "
                           f"{threshold:.2f}: rows take the teacher's label", requested, threshold, check)
    return LabelChoice("target", f"the teacher labelled only {measured}, below teacher_trust_accuracy "
                       f"{threshold:.2f}: rows keep the label they were generated for", requested, threshold, check)


def label_distribution(spec: TaskSpec, probabilities: dict[str, float]) -> dict[str, float]:
    """The teacher's label distribution keyed by exactly the task's labels (stripped), renormalised
    over them and rounded to 4 digits; empty when the teacher gave no probabilities."""
    given = {str(k).strip(): float(v) for k, v in probabilities.items()}
    values = {label.strip(): max(0.0, given.get(label.strip(), 0.0)) for label in spec.labels}
    total = sum(values.values())
    if total <= 0.0:
        return {}
    return {label: round(p / total, 4) for label, p in values.items()}
