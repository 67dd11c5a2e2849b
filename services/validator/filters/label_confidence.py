"""Label confidence: the teacher's own probability for the answer it chose, which the generator
stores with each row (from the logprobs of the structured-output choice):
``metadata.label_probability``, or ``metadata.choice_probabilities[<output>]``. Below the
threshold the teacher was guessing, and a small teacher mislabels often.

A row whose ``metadata.label_source`` is ``"target"`` is not checked: the generator labelled it
with the label it was generated for, because the teacher was measured weak on the seeds, and the
probability it carries is that weak teacher's for the target label — a low figure there says more
about the teacher than about the row, and would drop most rows. The report counts such rows."""

from __future__ import annotations

from typing import Any

from services.validator.config import LabelConfidenceConfig
from services.validator.row import Row

TARGET = "target"


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
        self.target_labelled = 0

    def apply(self, rows: list[Row]) -> None:
        threshold = self.config.min_probability
        for row in rows:
            if (row.metadata or {}).get("label_source") == TARGET:
                self.target_labelled += 1
                continue
            probability = label_probability(row)
            if probability is None:
                self.missing += 1
                if self.config.require:
                    row.reject(self.reason, "row carries no teacher label probability and require is true")
            elif probability < threshold:
                row.reject(self.reason, f"teacher probability {probability:.3f} for this output < {threshold}")

    def notes(self) -> list[str]:
        notes = []
        if self.missing and not self.config.require:
            notes.append(f"label_confidence: {self.missing} row(s) carried no teacher probability and were not checked")
        if self.target_labelled:
            notes.append(f"label_confidence: {self.target_labelled} row(s) labelled with their generation target "
                         f"(metadata.label_source = {TARGET}) were not checked: their probability is a teacher's "
                         "measured weak on the seeds")
        return notes
