"""Label floor (classification): the filters must not empty a class. A student trained without a
class can never predict it, and a class with one or two rows is barely better; a weak teacher's
doubts about a label cost less than its absence. So rows rejected only by a *soft* filter — one
that doubts the label or the quality of a row that is otherwise well-formed, new and no leak
(``SOFT_REASONS``) — are kept in reserve, and at the end of the run every label of the task with
fewer than ``min_rows`` accepted rows gets back its best reserved rows (highest teacher
``label_probability`` first, see label_confidence.py; rows without one after those; ties by file
order) until it reaches ``min_rows`` or its reserve runs out. Hard reasons (malformed, format,
ungrounded, too_long, test_leak, off_topic, duplicate, near_duplicate) are never rescued: such a
row must not be trained on whatever the class counts are.

Memory stays bounded: no label can need more than ``min_rows`` rows, so a label's reserve is a
heap of at most ``min_rows`` rows; a row pushed out of it is rejected for good at once. Reserved
rows are withheld from rejected.jsonl until the end, then written there or to accepted.jsonl (with
``metadata.rescued_from``: the soft reason), so every row lands in exactly one file.

A soft filter stops the chain, so a row it rejected never met the hard filters after it
(low_confidence and disagreement come before duplicate and near_duplicate). The rescue takes an
``admit`` check from the pipeline that runs those on the row; a row that fails one is rejected with
that reason instead, and one that passes is recorded by them (a later rescued copy is a duplicate).

Labels still below ``min_rows`` after the rescue are the report's ``thin_labels``, zero-row labels
included, each with a note — reported even when the rescue itself is switched off."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.validator.config import LabelFloorConfig
from services.validator.filters.label_confidence import label_probability
from services.validator.row import Row

SOFT_REASONS = frozenset({"low_confidence", "disagreement", "label_imbalance", "judge_rejected"})

# (row, soft reason) → None; rejects the row (row.reject) if a hard filter it skipped fails it.
Admit = Callable[[Row, str], None]


@dataclass(order=True)
class _Reserved:
    # Larger is better: the teacher's probability (rows without one rank below every row with one),
    # then the earlier line.
    rank: tuple[float, int]
    row: Row = field(compare=False)


class LabelFloor:
    def __init__(self, config: LabelFloorConfig, labels: list[str]) -> None:
        self.min_rows = config.min_rows
        self.rescues = config.enabled
        self.labels = list(dict.fromkeys(labels))
        self._known = set(self.labels)
        self._heaps: dict[str, list[_Reserved]] = {}
        self.rescued: dict[str, int] = {}
        self.thin: list[tuple[str, int]] = []

    def takes(self, label: str | None, reason: str | None) -> bool:
        """Whether a row rejected for ``reason`` goes to the reserve rather than straight to rejected."""
        return self.rescues and reason in SOFT_REASONS and label in self._known

    def needs(self, label: str | None, accepted: int) -> bool:
        return self.rescues and label in self._known and accepted < self.min_rows

    def offer(self, row: Row, label: str) -> Row | None:
        """Reserve ``row`` (rejected by a soft filter, reason set). Returns the row that no longer fits
        in the label's reserve — the worst one, possibly ``row`` itself — rejected for good, or None."""
        probability = label_probability(row)
        item = _Reserved((probability if probability is not None else -1.0, -row.line), row)
        heap = self._heaps.setdefault(label, [])
        if len(heap) < self.min_rows:
            heapq.heappush(heap, item)
            return None
        return heapq.heappushpop(heap, item).row

    def rescue(self, accepted: Mapping[str | None, int], admit: Admit) -> tuple[list[Row], list[Row]]:
        """Rows moved to accepted (``metadata.rescued_from`` set) and rows rejected for good, each in
        file order; ``accepted``: each label's accepted count before the rescue."""
        rescued: list[Row] = []
        dropped: list[Row] = []
        for label in self.labels:
            need = self.min_rows - accepted.get(label, 0)
            for item in sorted(self._heaps.pop(label, []), reverse=True):
                row = item.row
                if need > 0:
                    reason = row.reason or ""
                    row.reason, row.detail = None, ""
                    admit(row, reason)
                    if row.reason is None:
                        row.metadata = {**(row.metadata or {}), "rescued_from": reason}
                        rescued.append(row)
                        need -= 1
                        self.rescued[label] = self.rescued.get(label, 0) + 1
                        continue
                dropped.append(row)
            count = accepted.get(label, 0) + self.rescued.get(label, 0)
            if count < self.min_rows:
                self.thin.append((label, count))
        return sorted(rescued, key=lambda r: r.line), sorted(dropped, key=lambda r: r.line)

    def notes(self, by_label: Mapping[str, Mapping[str, int]]) -> list[str]:
        """``by_label``: the report's per-label counters (read, accepted, each reason)."""
        notes = []
        if self.rescued:
            each = ", ".join(f"{label} {n}" for label, n in self.rescued.items())
            notes.append(f"label_floor: {sum(self.rescued.values())} soft-rejected row(s) rescued to bring labels "
                         f"up to min_rows {self.min_rows}: {each}")
        for label, count in self.thin:
            counts = by_label.get(label, {})
            read = int(counts.get("read", 0))
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())
                                if reason not in ("read", "accepted") and n)
            why = (f"{read} generated row(s), rejected: {reasons}" if reasons
                   else f"{read} generated row(s)" + ("" if read else ": the generator wrote none"))
            notes.append(f"label '{label}' has {count} accepted row(s) (< label_floor.min_rows {self.min_rows}): "
                         f"{why}; generate more rows for it or relax the filters that rejected them — the student "
                         "learns little of a class it hardly sees")
        return notes
