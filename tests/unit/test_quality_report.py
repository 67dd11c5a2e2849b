"""The quality benchmark's report: the verdict sentence is rebuilt from the stored numbers on every
render and says "beat" only when the interval of student − seed-only excludes 0, several training
seeds are pooled (mean ± sd and the interval of the seed-averaged difference), sweeps name the
preset that came closest, and re-rendering keeps the measuring machine."""
from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest

from benchmarks import quality


def _comparison(delta: float, low: float, high: float, n: int = 100) -> dict:
    verdict = "better" if low > 0 else "worse" if high < 0 else "no clear difference"
    return {"a": "student", "b": "seed-only-student", "metric": "entity_f1", "delta": delta, "low": low,
            "high": high, "n": n, "verdict": verdict}


def _result(student: float, seed_only: float, sweep: list[dict] | None = None,
            interval: tuple[float, float] | None = None) -> dict:
    rows = [{"candidate": name, "role": quality.CANDIDATE_ROLE[name], "metric": "entity_f1", "value": value,
             "latency_p50_ms": latency, "error": None, "speedup_vs_teacher": None}
            for name, value, latency in [("teacher", 0.40, 900.0), ("student", student, 300.0),
                                         ("seed-only-student", seed_only, 310.0), ("base-student", 0.01, 320.0)]]
    delta = round(student - seed_only, 4)
    low, high = interval or (delta - 0.05, delta + 0.05)
    comparison = _comparison(delta, low, high)
    result = {"task": "conll-entities", "type": "extraction", "state": "SUCCEEDED", "seconds": 1800.0,
              "job": "jobs/abc", "teacher": "gemma3-270m", "student": "smollm2-135m", "seeds": 20,
              "primary_metric": "entity_f1", "student_teacher_ratio": student / 0.40, "test_examples": 100,
              "validation": {"read": 161, "accepted_count": 60}, "verdict": None, "comparisons": [comparison],
              "runs": [{"training_seed": 0, "job": "jobs/abc", "state": "SUCCEEDED", "student": student,
                        "seed_only": seed_only, "comparison": comparison, "predictions": "file:///p0.jsonl"}],
              "rows": rows, "date": "2026-11-30T09:00:00+00:00"}
    quality.update_verdict(result)
    if sweep is not None:
        result["filter_sweep"] = sweep
    return result


def _tried(preset: str, value: float | None, seed_only: float) -> dict:
    return {"preset": preset, "validation": {}, "state": "SUCCEEDED", "accepted": 40, "value": value,
            "seconds": 600.0, "delta_vs_seed_only": None if value is None else round(value - seed_only, 4)}


def test_verdict_says_beat_only_when_the_interval_excludes_zero() -> None:
    beat = _result(0.30, 0.20, interval=(0.04, 0.17))
    assert beat["verdict"]["outcome"] == "beat" and beat["verdict"]["synthetic_beat_seed_only"]
    assert quality.verdict_text(beat) == \
        "synthetic data beat the seed-only student by +0.100 entity_f1 [95% CI +0.040, +0.170]"
    unclear = _result(0.30, 0.20, interval=(-0.02, 0.21))
    assert unclear["verdict"]["outcome"] == "no clear difference" and not unclear["verdict"]["synthetic_beat_seed_only"]
    assert quality.verdict_text(unclear) == ("no clear difference between synthetic data and the seed-only student: "
                                             "+0.100 entity_f1 [95% CI -0.020, +0.210]")
    lost = _result(0.10, 0.20, interval=(-0.16, -0.03))
    assert lost["verdict"]["outcome"] == "lost"
    assert quality.verdict_text(lost) == \
        "synthetic data lost to the seed-only student by -0.100 entity_f1 [95% CI -0.160, -0.030]"
    no_baseline = _result(0.3, 0.2)
    no_baseline["verdict"] = None
    assert quality.verdict_text(no_baseline) == "seed-only baseline not run"


def test_a_verdict_measured_before_intervals_claims_nothing() -> None:
    old = _result(0.3, 0.2)
    old["verdict"] = {"synthetic_beat_seed_only": True, "delta": 0.336, "summary": "synthetic data beat ..."}
    assert quality.verdict_text(old) == ("synthetic data vs the seed-only student: +0.336 entity_f1, "
                                         "no interval recorded (re-run for a verdict)")


def test_the_verdict_comes_from_the_evaluators_comparison() -> None:
    report = {"primary_metric": "field_f1", "artifacts": {"predictions": "file:///store/p.jsonl"},
              "candidates": [{"name": "student", "metrics": {"field_f1": 0.4}},
                             {"name": "seed-only-student", "metrics": {"field_f1": 0.3}},
                             {"name": "teacher", "error": "generator down"}],
              "comparisons": [{"a": "student", "b": "base-student", "delta": 0.4, "low": 0.3, "high": 0.5, "n": 50},
                              {"a": "student", "b": "seed-only-student", "delta": 0.1, "low": 0.02, "high": 0.19,
                               "n": 50}]}
    record = quality.run_record(2, "jobs/r2", "SUCCEEDED", report)
    load = record.pop("load_average")  # when the run ended: says whether it was measured contended
    assert len(load) == 3 and all(x >= 0 for x in load)
    assert record == {"training_seed": 2, "job": "jobs/r2", "state": "SUCCEEDED", "student": 0.4, "seed_only": 0.3,
                      "comparison": report["comparisons"][1], "predictions": "file:///store/p.jsonl"}
    verdict = quality.verdict_from(record["comparison"], "field_f1")
    assert verdict == {"outcome": "beat", "synthetic_beat_seed_only": True, "metric": "field_f1", "delta": 0.1,
                       "low": 0.02, "high": 0.19, "n": 50, "training_seeds": 1}
    assert quality.run_record(1, "jobs/r1", "FAILED", None)["student"] is None


def _rows(student: np.ndarray, seed_only: np.ndarray) -> list[dict]:
    """predictions.jsonl rows of one run (per-example credit in ``score``)."""
    return ([{"candidate": "student", "index": i, "score": float(v)} for i, v in enumerate(student)]
            + [{"candidate": "seed-only-student", "index": i, "score": float(v)} for i, v in enumerate(seed_only)])


def test_training_seeds_are_pooled_with_mean_sd_and_one_interval() -> None:
    rng = np.random.default_rng(4)
    seed_only = (rng.random(120) < 0.5).astype(float)
    files, runs = {}, []
    for training_seed, lift in enumerate((0.25, 0.15, 0.2)):
        student = np.maximum(seed_only, rng.random(120) < lift)
        uri = f"file:///store/run{training_seed}.jsonl"
        files[uri] = _rows(student, seed_only)
        runs.append({"training_seed": training_seed, "job": f"jobs/{training_seed}", "state": "SUCCEEDED",
                     "student": float(student.mean()), "seed_only": float(seed_only.mean()),
                     "comparison": _comparison(float(student.mean() - seed_only.mean()), 0.01, 0.2, 120),
                     "predictions": uri})
    result = _result(0.6, 0.5)
    result.update({"primary_metric": "accuracy", "runs": runs})
    quality.summarize_runs(result, files.__getitem__)
    stats = result["across_seeds"]
    deltas = [r["student"] - r["seed_only"] for r in runs]
    assert stats["runs"] == 3 and stats["training_seeds"] == [0, 1, 2] and stats["beat"] == 3
    assert stats["delta"]["mean"] == pytest.approx(np.mean(deltas), abs=1e-4)
    assert stats["student"]["sd"] == pytest.approx(np.std([r["student"] for r in runs], ddof=1), abs=1e-4)
    pooled = stats["pooled"]
    assert pooled["runs"] == 3 and pooled["n"] == 120
    assert pooled["delta"] == pytest.approx(np.mean(deltas))
    assert 0 < pooled["low"] < pooled["delta"] < pooled["high"]  # the student never loses an example here
    assert result["verdict"]["training_seeds"] == 3 and result["verdict"]["outcome"] == "beat"
    text = quality.verdict_text(result)
    assert text.startswith("synthetic data beat the seed-only student by +")
    assert "; mean of 3 training seeds, student " in text and "(sd); single runs: 3 beat, 0 lost" in text
    row = next(line for line in quality.markdown([result]).splitlines() if line.startswith("| conll-entities"))
    assert (f"| {stats['student']['mean']:.2f} ± {stats['student']['sd']:.2f} | "
            f"{seed_only.mean():.2f} ± 0.00 |") in row  # the same seed-only answers in every run here
    # A run whose rows do not reproduce its reported score is not pooled into a wrong interval.
    runs[1]["student"] += 0.01
    assert quality.pooled_comparison(runs, "accuracy", files.__getitem__) is None


@pytest.mark.parametrize(("best", "phrase"), [(0.25, "above seed-only"), (0.15, "still below seed-only")])
def test_verdict_names_the_closest_filter_setting(best: float, phrase: str) -> None:
    result = _result(0.10, 0.20, [_tried("lenient", 0.12, 0.20), _tried("grounded", best, 0.20),
                                   _tried("judge", None, 0.20)])
    result["closest_filter_setting"] = "grounded"
    assert quality.verdict_text(result).endswith(
        f"; closest filter setting: grounded ({best:.3f}, {phrase}, one run, no interval)")


def test_markdown_row_and_sweep_lines() -> None:
    result = _result(0.10, 0.20, [_tried("grounded", 0.15, 0.20)])
    result["closest_filter_setting"] = "grounded"
    text = quality.report_markdown([result], {"cores": 2, "cpu": "AMD EPYC", "gpu": None, "memory_gib": 24,
                                              "python": "3.11.7"})
    assert text.startswith("Measured 2026-11-30 on 2 cores AMD EPYC, no GPU, 24 GiB, Python 3.11.7; "
                           "teacher gemma3-270m, student smollm2-135m; 20 seeds per task.")
    row = next(line for line in text.splitlines() if line.startswith("| conll-entities"))
    assert "| 0.40 | 0.10 | 0.20 | 0.01 | 300 / 900 ms |" in row
    assert ("synthetic data lost to the seed-only student by -0.100 entity_f1 [95% CI -0.150, -0.050]; "
            "closest filter setting: grounded") in row
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
    assert stored["tasks"][0]["comparisons"] == result["comparisons"]  # the interval is kept per task


def test_table_only_renders_old_and_new_results(tmp_path, monkeypatch, capsys) -> None:
    old = _result(0.3, 0.2)
    old["task"] = "news-topic"
    old["verdict"] = {"synthetic_beat_seed_only": True, "delta": 0.1, "summary": "old sentence"}
    saved = {"machine": {"cores": 2, "cpu": "AMD EPYC", "gpu": None, "memory_gib": 24, "python": "3.11.7"},
             "tasks": [old, _result(0.30, 0.20, interval=(0.04, 0.17))]}
    (tmp_path / "quality.json").write_text(json.dumps(saved))
    monkeypatch.setattr("benchmarks._common.RESULTS", tmp_path)
    monkeypatch.setattr(quality, "RESULTS_FILE", tmp_path / "quality.json")
    monkeypatch.setattr(sys, "argv", ["quality.py", "--table-only"])
    assert quality.main() == 0
    out = capsys.readouterr().out
    assert "news-topic" in out and "no interval recorded" in out
    assert "beat the seed-only student by +0.100 entity_f1 [95% CI +0.040, +0.170]" in out
    stored = json.loads((tmp_path / "quality.json").read_text())
    assert stored["machine"]["cpu"] == "AMD EPYC" and "no interval recorded" in stored["tasks"][0]["verdict"]["summary"]


def test_soft_labels_are_compared_with_hard_labels_seed_by_seed() -> None:
    rng = np.random.default_rng(7)
    pairs = []
    for _ in range(3):
        hard = (rng.random(150) < 0.6).astype(float)
        soft = np.where(rng.random(150) < 0.1, 0.0, hard)  # soft labels lose ~10% of the hard student's hits
        rows = _rows(soft, hard)
        pairs.append(([r for r in rows if r["candidate"] == "student"],
                      [dict(r, candidate="student") for r in rows if r["candidate"] == "seed-only-student"]))
    comparison = quality.soft_label_comparison(pairs, "accuracy")
    assert comparison["runs"] == 3 and comparison["n"] == 150
    assert comparison["soft"]["mean"] < comparison["hard"]["mean"]
    assert comparison["high"] < 0 and comparison["verdict"] == "worse"  # never better on any example here
