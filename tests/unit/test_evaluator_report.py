"""The evaluator's report: the student/teacher ratio rule, the Markdown table and the PNG plots,
on a hand-built report."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.evaluator import report as report_mod
from services.evaluator.candidates import EvalOptions
from services.evaluator.handler import student_teacher_ratio
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
    assert student_teacher_ratio(candidates[1:], "accuracy")["student_teacher_ratio"] is None
    zero = [_candidate("teacher", "teacher", 0.0), _candidate("student", "student", 0.5)]
    assert "scored 0" in student_teacher_ratio(zero, "accuracy")["ratio_note"]


def test_markdown_and_plots(tmp_path: Path):
    candidates = [_candidate("teacher", "teacher", 0.75), _candidate("student", "student", 0.75, malformed=1),
                  {"name": "broken", "kind": "student", "examples": 4, "error": "model x does not exist"}]
    report = {"task": {"name": "sentiment", "type": "classification"}, "examples": 4, "primary_metric": "accuracy",
              "candidates": candidates, "notes": ["a note"], **student_teacher_ratio(candidates, "accuracy")}
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


def test_latency_stats_and_options():
    stats = report_mod.latency_stats([0.1, 0.2, 0.3, 0.4, 1.0], [10, 10, 10, 10, 10])
    assert stats["latency_p50_ms"] == pytest.approx(300.0)
    assert stats["latency_p95_ms"] == pytest.approx(880.0)  # numpy linear interpolation: 0.4 + 0.8 * 0.6
    assert stats["tokens_per_second"] == pytest.approx(50 / 2.0)
    assert EvalOptions.from_dict({"max_examples": "5"}).max_examples == 5
    with pytest.raises(InvalidArgument, match="unknown option"):
        EvalOptions.from_dict({"max_exmaples": 5})
