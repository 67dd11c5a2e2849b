"""The validation report (report.json): how many rows were read, accepted and rejected, per
reason and per label, with the effective configuration and any notes (fallbacks, skipped
checks). The counts always add up: accepted + rejected = read. Every label of a classification
task is listed, those no row was generated for included, and labels left with fewer than
label_floor.min_rows accepted rows are named in ``thin_labels``: a class the training data lacks
must be seen, not a silent zero."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from services.validator.row import REASON_CODES

NO_LABEL = "(none)"


@dataclass
class Report:
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    by_reason: Counter = field(default_factory=Counter)
    # label → {"read": n, "accepted": n, "<reason>": n}
    by_label: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    notes: list[str] = field(default_factory=list)
    # label → rows the label floor moved back to accepted (counted in "accepted" too)
    rescued: Counter = field(default_factory=Counter)
    # (label, accepted count) of the task's labels still below label_floor.min_rows
    thin_labels: list[tuple[str, int]] = field(default_factory=list)

    def declare_labels(self, labels: list[str]) -> None:
        """List these labels even if no row carries them."""
        for label in labels:
            self.by_label.setdefault(label or NO_LABEL, Counter())

    def count_read(self, label: str | None) -> None:
        self.read += 1
        self.by_label[label or NO_LABEL]["read"] += 1

    def count_accepted(self, label: str | None) -> None:
        self.accepted += 1
        self.by_label[label or NO_LABEL]["accepted"] += 1

    def count_rescued(self, label: str | None) -> None:
        """A soft-rejected row the label floor accepted after all (count_accepted counts it too)."""
        self.rescued[label or NO_LABEL] += 1

    def count_rejected(self, label: str | None, reason: str) -> None:
        self.rejected += 1
        self.by_reason[reason] += 1
        self.by_label[label or NO_LABEL][reason] += 1

    def check(self) -> None:
        if self.accepted + self.rejected != self.read:  # a bug, never an input problem
            raise AssertionError(f"validator lost rows: read {self.read} != accepted {self.accepted} + "
                                 f"rejected {self.rejected}")

    def rejected_by_reason(self) -> dict[str, int]:
        return {reason: int(self.by_reason.get(reason, 0)) for reason in REASON_CODES}

    def to_dict(self, *, task: str, config: dict[str, Any], seconds: float, tokenizer: str) -> dict[str, Any]:
        labels = {}
        for label in sorted(self.by_label):
            counts = self.by_label[label]
            labels[label] = {
                "read": int(counts["read"]),
                "accepted": int(counts["accepted"]),
                "rejected": int(counts["read"] - counts["accepted"]),
                "rejected_by_reason": {r: int(counts[r]) for r in REASON_CODES if counts[r]},
                "rescued": int(self.rescued[label]),
            }
        return {
            "task": task,
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "acceptance_rate": round(self.accepted / self.read, 4) if self.read else 0.0,
            "rejected_by_reason": self.rejected_by_reason(),
            "labels": labels,
            "rescued": int(sum(self.rescued.values())),
            "thin_labels": [{"label": label, "accepted": count} for label, count in self.thin_labels],
            "tokenizer": tokenizer,
            "seconds": round(seconds, 3),
            "rows_per_second": round(self.read / seconds, 1) if seconds > 0 else 0.0,
            "notes": list(self.notes),
            "config": config,
        }
