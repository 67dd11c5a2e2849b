"""The validation benchmark's baseline does what it claims: exact and near duplicates go, distinct
rows stay, a malformed line is skipped (so the rows/s it reports are for real dedup work)."""

from __future__ import annotations

import json

from benchmarks.validation import datasketch_dedup, synthetic_rows


def _line(text: str) -> str:
    return json.dumps({"input": text, "output": "card"})


def test_datasketch_baseline_drops_exact_and_near_copies_and_keeps_distinct_rows() -> None:
    base = "why was my contactless card declined at the shop yesterday afternoon please help"
    lines = [_line(base), _line(base.upper()), _line(base + " thanks"),  # exact (after normalising), near
             _line("send money to my sister abroad with the lowest fee"), '{"input": "truncated',
             _line("what is the interest rate on a personal loan of five thousand")]
    assert datasketch_dedup(lines) == 3


def test_datasketch_baseline_on_the_benchmarks_rows_keeps_about_the_distinct_share() -> None:
    lines = synthetic_rows(2000)
    kept = datasketch_dedup(lines)
    # ~1% malformed, ~4% exact and ~4% near copies by construction: the rest stays.
    assert 0.85 * len(lines) <= kept <= 0.95 * len(lines)
