"""The quality benchmark's report: the verdict sentence is rebuilt from the stored numbers on every
render, sweeps name the preset that came closest, and re-rendering keeps the measuring machine."""
from __future__ import annotations

import copy
import json

import pytest

from benchmarks import quality


def _result(student: float, seed_only: float, sweep: list[dict] | None = None) -> dict:
    rows = [{"candidate": name, "role": quality.CANDIDATE_ROLE[name], "metric": "entity_f1", "value": value,
             "latency_p50_ms": latency, "error": None, "speedup_vs_teacher": None}
            for name, value, latency in [("teacher", 0.40, 900.0), ("student", student, 300.0),
                                         ("seed-only-student", seed_only, 310.0), ("base-student", 0.01, 320.0)]]
    result = {"task": "conll-entities", "type": "extraction", "state": "SUCCEEDED", "seconds": 1800.0,
              "job": "jobs/abc", "teacher": "gemma3-270m", "student": "smollm2-135m", "seeds": 20,
              "primary_metric": "entity_f1", "student_teacher_ratio": student / 0.40, "test_examples": 100,
              "validation": {"read": 161, "accepted_count": 60},
              "verdict": {"synthetic_beat_seed_only": student > seed_only, "delta": round(student - seed_only, 4)},
              "rows": rows, "date": "2026-11-30T09:00:00+00:00"}
    if sweep is not None:
        result["filter_sweep"] = sweep
    return result


def _tried(preset: str, value: float | None, seed_only: float) -> dict:
    return {"preset": preset, "validation": {}, "state": "SUCCEEDED", "accepted": 40, "value": value,
            "seconds": 600.0, "delta_vs_seed_only": None if value is None else round(value - seed_only, 4)}


def test_verdict_says_who_won_and_by_how_much() -> None:
    assert quality.verdict_text(_result(0.30, 0.20)) == \
        "synthetic data beat the seed-only student by +0.100 entity_f1"
    assert quality.verdict_text(_result(0.10, 0.20)) == \
        "synthetic data did NOT beat the seed-only student by -0.100 entity_f1"
    no_baseline = _result(0.3, 0.2)
    no_baseline["verdict"] = None
    assert quality.verdict_text(no_baseline) == "seed-only baseline not run"


@pytest.mark.parametrize(("best", "phrase"), [(0.25, "beats seed-only"), (0.15, "still below seed-only")])
def test_verdict_names_the_closest_filter_setting(best: float, phrase: str) -> None:
    result = _result(0.10, 0.20, [_tried("lenient", 0.12, 0.20), _tried("grounded", best, 0.20),
                                   _tried("judge", None, 0.20)])
    result["closest_filter_setting"] = "grounded"
    assert quality.verdict_text(result).endswith(f"; closest filter setting: grounded ({best:.3f}, {phrase})")


def test_markdown_row_and_sweep_lines() -> None:
    result = _result(0.10, 0.20, [_tried("grounded", 0.15, 0.20)])
    result["closest_filter_setting"] = "grounded"
    text = quality.report_markdown([result], {"cores": 2, "cpu": "AMD EPYC", "gpu": None, "memory_gib": 24,
                                              "python": "3.11.7"})
    assert text.startswith("Measured 2026-11-30 on 2 cores AMD EPYC, no GPU, 24 GiB, Python 3.11.7; "
                           "teacher gemma3-270m, student smollm2-135m; 20 seeds per task.")
    row = next(line for line in text.splitlines() if line.startswith("| conll-entities"))
    assert "| 0.40 | 0.10 | 0.20 | 0.01 | 300 / 900 ms |" in row
    assert "did NOT beat the seed-only student by -0.100 entity_f1; closest filter setting: grounded" in row
    assert "- **conll-entities** (extraction): 161 generated rows, 60 accepted by the validator" in text
    assert "  - filter preset `grounded`: 40 rows kept, student 0.150 (-0.050 vs seed-only), succeeded in 10 min" in text


def test_failed_task_gets_a_row_with_its_state() -> None:
    failed = {"task": "conll-entities", "type": "extraction", "state": "FAILED", "message": "trainer: OOM",
              "seconds": 60.0, "rows": [], "job": "jobs/x"}
    assert "| conll-entities | — | — | FAILED: trainer: OOM |" in quality.markdown([failed])


def test_save_rewrites_old_summaries_and_keeps_the_measuring_machine(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("benchmarks._common.RESULTS", tmp_path)
    result = _result(0.10, 0.20, [_tried("grounded", 0.15, 0.20)])
    result["closest_filter_setting"] = "grounded"
    # What an older run stored: the sentence with a sweep appended, and a copy of its first half.
    result["verdict"]["summary"] = "synthetic data did NOT beat ...; closest filter setting: lenient (0.1, ...)"
    result["verdict"]["base_summary"] = "synthetic data did NOT beat ..."
    measured_on = {"cores": 64, "cpu": "other", "gpu": "H200", "memory_gib": 2000, "python": "3.12"}
    quality.save([copy.deepcopy(result)], measured_on)
    stored = json.loads((tmp_path / "quality.json").read_text())
    assert stored["machine"] == measured_on
    verdict = stored["tasks"][0]["verdict"]
    assert "base_summary" not in verdict
    assert verdict["summary"] == quality.verdict_text(result)
    assert stored["markdown"] == quality.markdown([result])
