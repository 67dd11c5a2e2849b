"""Token budgets taken from a task's own examples. A fixed cap (96 tokens for a generated input,
256 for an answer) silently cuts the rows of a task whose texts are longer than the ones it was
tuned on; a budget of one and a half times the longest seed, never below the fixed default, fits
the task and still stops a teacher that rambles."""

from __future__ import annotations

import math
from collections.abc import Iterable

from services.common.taskspec import TaskSpec

HEADROOM = 1.5  # the longest seed is a sample: new rows may be somewhat longer
MARGIN = 16     # tokenizer boundary effects, closing quotes and brackets
MAX_BUDGET = 4096


def budget_for(lengths: Iterable[int], floor: int, cap: int = MAX_BUDGET) -> int:
    """max(floor, 1.5 × the longest length + 16), at most ``cap`` (and never below ``floor``)."""
    longest = max(lengths, default=0)
    return max(floor, min(cap, math.ceil(longest * HEADROOM) + MARGIN))


def answers_to_fit(spec: TaskSpec, seed_outputs: Iterable[str]) -> list[str]:
    """What an answer budget is fit to: every label for classification (a label the seeds lack is
    still an answer), else the seeds' outputs."""
    return list(spec.labels) if spec.type == "classification" else list(seed_outputs)
