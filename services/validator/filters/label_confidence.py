"""Label confidence: the teacher's own probability for the answer it chose, which the generator
stores with each row (from the logprobs of the structured-output choice):
``metadata.label_probability``, or ``metadata.choice_probabilities[<output>]``. Below the
threshold the teacher was guessing, and a small teacher mislabels often."""

from __future__ import annotations

from typing import Any

from services.validator.config import LabelConfidenceConfig
from services.validator.row import Row


def label_probability(row: Row) -> float | None:
    meta: dict[str, Any] = row.metadata or {}
    value = meta.get("label_probability")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    choices = meta.get("choice_probabilities")
    if isinstance(choices, dict) and choices:
        chosen = choices.get(row.output, choices.get(str(row.raw_output).strip()))
        if isinstance(chosen, (int, float)) and not isinstance(chosen, bool):
            return float(chosen)
        return 0.0  # the teacher gave probabilities and none for this label
    return None


class LabelConfidenceFilter:
    reason = "low_confidence"

    def __init__(self, config: LabelConfidenceConfig) -> None:
        self.config = config
        self.missing = 0

    def apply(self, rows: list[Row]) -> None:
        threshold = self.config.min_probability
        for row in rows:
            probability = label_probability(row)
            if probability is None:
                self.missing += 1
                if self.config.require:
                    row.reject(self.reason, "row carries no teacher label probability and require is true")
            elif probability < threshold:
                row.reject(self.reason, f"teacher probability {probability:.3f} for this output < {threshold}")

    def notes(self) -> list[str]:
        if self.missing and not self.config.require:
            return [f"label_confidence: {self.missing} row(s) carried no teacher probability and were not checked"]
        return []
