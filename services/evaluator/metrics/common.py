"""Shapes every metric module returns, so the handler and the report treat task types alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExampleScore:
    """How one prediction fared.

    ``score`` is the example's credit on the task's primary metric (0..1); ``malformed`` says why
    a prediction could not be read as an answer (bad JSON, a label that does not exist) and is
    ``None`` for a well-formed one, right or wrong."""

    score: float
    malformed: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskScores:
    """Aggregate metrics (name → value, all in 0..1), one ExampleScore per example, and extras for
    the report (per-label tables, confusion matrix)."""

    metrics: dict[str, float]
    examples: list[ExampleScore]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def malformed(self) -> int:
        return sum(1 for e in self.examples if e.malformed)


def mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def check_lengths(golds: list[str], predictions: list[str]) -> None:
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} gold answers but {len(predictions)} predictions")
