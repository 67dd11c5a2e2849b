"""Task metrics, one module per task type, all pure functions over gold and predicted answer
texts. ``score_task`` picks the module for a TaskSpec; ``PRIMARY_METRIC`` names the headline
number of each task type (the one the student/teacher ratio is taken on)."""

from __future__ import annotations

from typing import Any

from services.common.taskspec import TaskSpec
from services.evaluator.metrics import classification, extraction, qa, tool_calling
from services.evaluator.metrics.common import ExampleScore, TaskScores

PRIMARY_METRIC: dict[str, str] = {
    "classification": "accuracy",
    "extraction": "field_f1",
    "qa-open-book": "token_f1",
    "qa-closed-book": "token_f1",
    "tool-calling": "staged_score",
    "multi-turn-tool-calling": "staged_score",
}

__all__ = ["PRIMARY_METRIC", "ExampleScore", "TaskScores", "score_task"]


def score_task(spec: TaskSpec, golds: list[str], predictions: list[str],
               metadata: list[dict[str, Any]] | None = None,
               judge_verdicts: list[float] | None = None) -> TaskScores:
    """Score cleaned prediction texts against gold answers for ``spec``'s task type."""
    if spec.type == "classification":
        return classification.evaluate(golds, predictions, spec.labels)
    if spec.type == "extraction":
        return extraction.evaluate(golds, predictions, spec.output_schema)
    if spec.type in ("tool-calling", "multi-turn-tool-calling"):
        possible = [(m or {}).get("possible_answer") for m in metadata] if metadata else None
        if possible and all(p is None for p in possible):
            possible = None  # examples without one fall back to their gold answer
        return tool_calling.evaluate(golds, predictions, spec.tools, possible)
    return qa.evaluate(golds, predictions, judge_verdicts)
