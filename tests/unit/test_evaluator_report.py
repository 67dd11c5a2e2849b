"""The evaluator's report: the student/teacher ratio rule, the Markdown table and the PNG plots,
on a hand-built report."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.evaluator import report as report_mod
from services.evaluator.candidates import EvalOptions
from services.evaluator.handler import comparison_pairs, evaluation_result, student_teacher_ratio
from services.evaluator.metrics import classification


def _candidate(name: str, kind: str, accuracy: float, malformed: int = 0) -> dict:
    scores = classification.evaluate(["a", "b", "a", "b"], ["a", "b", "a", "a" if accuracy < 1 else "b"], ["a", "b"])
    return {"name": name, "kind": kind, "model": "m", "decoding": "greedy", "examples": 4,
            "metrics": {"accuracy": accuracy, "macro_f1": accuracy}, "latency_p50_ms": 12.0,
            "latency_p95_ms": 20.0, "tokens_per_second": 55.5, "malformed": malformed, "extra": scores.extra,
            "malformed_examples": [{"id": "x1", "reason": "'maybe' is not one of the labels", "prediction": "maybe"}]
            if malformed else []}


def test_ratio_uses_best_trained_student_and_skips_baselines():
    candidates = [_candidate("teacher", "teacher", 0.8), _candidate("student", "student", 0.6),
                  _candidate("student-onnx", "onnx", 0.7), _candidate("base-student", "student", 0.9),
                  _candidate("seed-only-student", "student", 0.95)]
    ratio = student_teacher_ratio(candidates, "accuracy")
    assert ratio["student_teacher_ratio"] == pytest.approx(0.7 / 0.8)
    assert ratio["ratio"]["student"] == "student-onnx"
    assert student_teacher_ratio(candidates, "accuracy", ["base-student"])["student_teacher_ratio"] == pytest.approx(0.9 / 0.8)
    no_teacher = student_teacher_ratio(candidates[1:], "accuracy")
    assert no_teacher == {"student_teacher_ratio": None, "ratio_note": "no teacher among the candidates"}
    zero = [_candidate("teacher", "teacher", 0.0), _candidate("student", "student", 0.5)]
    assert "scored 0" in student_teacher_ratio(zero, "accuracy")["ratio_note"]


def test_ratio_is_not_given_when_the_teacher_or_a_trained_student_failed():
    teacher_down = [{"name": "teacher", "kind": "teacher", "examples": 4, "error": "generator Label: UNAVAILABLE"},
                    _candidate("student", "student", 0.6), _candidate("base-student", "student", 0.2)]
    ratio = student_teacher_ratio(teacher_down, "accuracy")
    assert ratio == {"student_teacher_ratio": None, "ratio_note": "teacher failed: generator Label: UNAVAILABLE"}
    # A second trained student that scored does not stand in for the one that failed.
    student_down = [_candidate("teacher", "teacher", 0.8), _candidate("student-onnx", "onnx", 0.7),
                    {"name": "student", "kind": "student", "examples": 4, "error": "answered 2 of 4 examples"}]
    assert student_teacher_ratio(student_down, "accuracy")["ratio_note"] == "student failed: answered 2 of 4 examples"
    # A failed baseline is reported elsewhere; the ratio itself is still measured.
    baseline_down = [_candidate("teacher", "teacher", 0.8), _candidate("student", "student", 0.6),
                     {"name": "seed-only-student", "kind": "student", "examples": 4, "error": "no such model"}]
    assert student_teacher_ratio(baseline_down, "accuracy")["student_teacher_ratio"] == pytest.approx(0.75)


def test_comparison_pairs_put_the_student_against_every_scored_candidate():
    candidates = [_candidate("teacher", "teacher", 0.8), _candidate("student", "student", 0.6),
                  _candidate("base-student", "student", 0.2), _candidate("seed-only-student", "student", 0.5),
                  _candidate("student-onnx", "onnx", 0.6)]
    assert comparison_pairs(candidates) == [
        ("student", "teacher"), ("student", "seed-only-student"), ("student", "base-student"),
        ("student", "student-onnx"), ("student-onnx", "teacher"), ("student-onnx", "seed-only-student"),
        ("student-onnx", "base-student"), ("seed-only-student", "base-student")]
    failed = [candidates[0], candidates[1], {"name": "seed-only-student", "kind": "student", "error": "x"},
              candidates[2]]
    assert comparison_pairs(failed) == [("student", "teacher"), ("student", "base-student")]
    assert comparison_pairs(candidates[:3], ["base-student"]) == [("base-student", "teacher"),
                                                                  ("base-student", "student")]


def test_markdown_and_plots(tmp_path: Path):
    candidates = [_candidate("teacher", "teacher", 0.75), _candidate("student", "student", 0.75, malformed=1),
                  {"name": "broken", "kind": "student", "examples": 4, "error": "model x does not exist"}]
    comparisons = [{"a": "student", "b": "teacher", "metric": "accuracy", "delta": 0.0, "low": -0.5, "high": 0.5,
                    "n": 4, "verdict": "no clear difference"}]
    report = {"task": {"name": "sentiment", "type": "classification"}, "examples": 4, "primary_metric": "accuracy",
              "candidates": candidates, "notes": ["a note"], "comparisons": comparisons,
              "comparison_method": {"resamples": 2000, "seed": 0},
              **student_teacher_ratio(candidates, "accuracy", ["student"])}
    paths = report_mod.write_plots(report, tmp_path)
    assert sorted(p.name for p in paths) == ["confusion-student.png", "confusion-teacher.png", "scores.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report_mod.render_markdown(report)
    assert "student/teacher ratio **1.000**" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].split("|")[1].strip() == "candidate" and "accuracy" in table[0] and "p95 ms" in table[0]
    assert len({len(line) for line in table[:5]}) == 1  # padded: the columns line up in a terminal
    assert "| student " in text and "1/4" in text and "55.5" in text
    assert "- **broken**: model x does not exist" in text
    assert "![scores](scores.png)" in text and "![confusion matrix: student](confusion-student.png)" in text
    assert "`x1`: 'maybe' is not one of the labels" in text
    assert "## Differences on accuracy (paired bootstrap, 95% intervals)" in text
    assert "resampled 2000 times (seed 0)" in text
    row = next(line for line in text.splitlines() if line.startswith("| student − teacher"))
    assert [cell.strip() for cell in row.strip("|").split("|")] == \
        ["student − teacher", "no clear difference", "+0.000", "[-0.500, +0.500]", "4"]
    without_ratio = {**report, **student_teacher_ratio(candidates, "accuracy")}
    assert "student/teacher ratio: n/a (broken failed: model x does not exist)" in \
        report_mod.render_markdown(without_ratio)


def test_evaluation_result_reports_failures_without_scores():
    candidates = [_candidate("student", "student", 0.75),
                  {"name": "teacher", "kind": "teacher", "examples": 4, "error": "generator down"}]
    report = {"primary_metric": "accuracy", "candidates": candidates, "comparisons": [],
              **student_teacher_ratio(candidates, "accuracy")}
    result = evaluation_result(report, {"report_json": {"uri": "file:///r.json"}})
    assert result["scores"][1] == {"name": "teacher", "error": "generator down"}
    assert result["scores"][0]["metrics"] == {"accuracy": 0.75, "macro_f1": 0.75} and "error" not in result["scores"][0]
    assert result["failed_candidates"] == ["teacher"]
    assert result["student_teacher_ratio"] == 0.0 and result["ratio_note"] == "teacher failed: generator down"
    assert result["report_json"] == {"uri": "file:///r.json"}


def test_latency_stats_and_options():
    stats = report_mod.latency_stats([0.1, 0.2, 0.3, 0.4, 1.0], [10, 10, 10, 10, 10])
    assert stats["latency_p50_ms"] == pytest.approx(300.0)
    assert stats["latency_p95_ms"] == pytest.approx(880.0)  # numpy linear interpolation: 0.4 + 0.8 * 0.6
    assert stats["tokens_per_second"] == pytest.approx(50 / 2.0)
    assert EvalOptions.from_dict({"max_examples": "5"}).max_examples == 5
    with pytest.raises(InvalidArgument, match=r"unknown evaluation setting evaluation\.max_exmaples; known keys "
                                              r"of evaluation: max_examples"):
        EvalOptions.from_dict({"max_exmaples": 5})
    with pytest.raises(InvalidArgument, match=r"evaluation\.teacher_batch_size must be >= 1, got 0"):
        EvalOptions.from_dict({"teacher_batch_size": 0})
    with pytest.raises(InvalidArgument, match=r"evaluation\.constrained: expected true or false, got 'maybe'"):
        EvalOptions.from_dict({"constrained": "maybe"})
    options = EvalOptions.from_dict({"bootstrap_resamples": 500, "bootstrap_seed": 3})
    assert (options.bootstrap_resamples, options.bootstrap_seed) == (500, 3)
    assert (EvalOptions().bootstrap_resamples, EvalOptions().bootstrap_seed) == (2000, 0)
    with pytest.raises(InvalidArgument, match="bootstrap_resamples must be >= 100"):
        EvalOptions.from_dict({"bootstrap_resamples": 10})
