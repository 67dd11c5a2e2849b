"""One row of the file being validated, as the filters see it, and the reason codes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from services.common.taskspec import Example

# Every reason a row can be rejected for, in the order docs/validator.md explains them.
REASON_CODES: tuple[str, ...] = (
    "malformed", "format", "ungrounded", "too_long", "duplicate", "near_duplicate", "test_leak", "off_topic",
    "label_imbalance", "low_confidence", "disagreement", "judge_rejected",
)

_PUNCT = re.compile(r"[^\w\s]")


def normalize_key(text: str) -> str:
    """taskspec.normalize_text (case, punctuation and whitespace folded) with one regex instead of
    two: str.split() and the regex ``\\s`` agree on what whitespace is. Equality is tested."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


@dataclass(slots=True)
class Row:
    line: int
    id: str
    input: str
    # The output as read (a string, or a JSON value for structured tasks) and as accepted
    # (canonical text, set by the format filter).
    raw_output: Any
    output: str
    context: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # normalize_text(context + " " + input): the identity used by dedup, leakage and topic checks.
    key: str = ""
    label: str | None = None
    reason: str | None = None
    detail: str = ""

    def reject(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail

    def example(self) -> dict[str, Any]:
        # The same JSONL row shape as every other Example the platform writes.
        return Example(input=self.input, output=self.output, context=self.context, id=self.id,
                       metadata=self.metadata).to_dict()
