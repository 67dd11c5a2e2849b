"""A failed candidate is visible in the result, never a score: one evaluation with the tiny real
student (services.serving.testing), its untrained base, a seed-only student whose model does not
exist, and a teacher whose generator address nobody listens on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from distillery.v1 import evaluator_pb2

from services.common.artifacts import ArtifactStore
from services.common.convert import message_from_record, message_to_dict
from services.common.references import ModelReferences
from services.evaluator.candidates import CandidateSpec, EvalOptions, build_candidate, model_resolver
from services.evaluator.generator_client import GeneratorClient
from services.evaluator.handler import Evaluation, EvaluationJob, evaluation_result, load_test_examples
from services.evaluator.report import render_markdown
from services.serving.testing import SENTIMENT, SENTIMENT_EXAMPLES, cached_tiny_student
from tests.helpers.services import free_port


@pytest.fixture(scope="module")
def tiny(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    merged, _ = cached_tiny_student(request.config.cache.mkdir("serving-tiny-student"))
    return merged, merged.parent / "base"


def test_failed_candidates_carry_their_error_and_no_score(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    merged, base = tiny
    store = ArtifactStore(str(tmp_path / "store"))
    test = store.put_bytes("inputs/test.jsonl", "".join(
        json.dumps({"input": text, "output": label}) + "\n" for text, label in SENTIMENT_EXAMPLES).encode())
    options = EvalOptions.from_dict({"teacher_timeout_s": 1, "teacher_batch_size": 4})
    missing = tmp_path / "no-such-model"
    candidates = [CandidateSpec("teacher", "teacher", endpoint=f"127.0.0.1:{free_port()}"),
                  CandidateSpec("student", "student", str(merged)),
                  CandidateSpec("base-student", "student", str(base)),
                  CandidateSpec("seed-only-student", "student", str(missing))]
    job = EvaluationJob(SENTIMENT, test, None, candidates, options)
    examples = load_test_examples(store.local_path(test), SENTIMENT)
    roots = (merged.parent.resolve(), base.parent.resolve(), tmp_path.resolve())  # the tests' own checkpoints
    resolve = model_resolver(ModelReferences(store, tmp_path / "models", roots))

    def make(spec: CandidateSpec):
        return build_candidate(spec, SENTIMENT, options, resolve=resolve, client_factory=GeneratorClient,
                               generator_endpoint="", device="cpu")

    evaluation = Evaluation(job, examples, tmp_path / "work", make)
    results = evaluation.predict_all()
    report, _ = evaluation.build_report(results, {})
    result = evaluation_result(report, {})
    # Through the contract the pipeline reads: EvaluationResult, back to a dict.
    message = message_from_record(result, evaluator_pb2.EvaluationResult())  # strict: every field fits
    read = message_to_dict(message)

    scores = {s["name"]: s for s in read["scores"]}
    assert list(scores) == ["teacher", "student", "base-student", "seed-only-student"]
    assert "generator Label at 127.0.0.1" in scores["teacher"]["error"]  # loaded, then failed predicting
    assert str(missing) in scores["seed-only-student"]["error"]  # could not be loaded
    for name in ("teacher", "seed-only-student"):
        assert set(scores[name]) == {"name", "error"}  # no metrics, no latency: nothing to mistake for a score
        assert not message.scores[list(scores).index(name)].metrics
    assert "error" not in scores["student"] and set(scores["student"]["metrics"]) == {"accuracy", "macro_f1"}
    assert read["failed_candidates"] == ["teacher", "seed-only-student"]
    assert message.student_teacher_ratio == 0.0
    assert read["ratio_note"].startswith("teacher failed: generator Label at 127.0.0.1")

    # Intervals only between candidates that were scored: the student against the base student.
    (comparison,) = read["comparisons"]
    assert (comparison["a"], comparison["b"], comparison["metric"], comparison["n"]) == \
        ("student", "base-student", "accuracy", len(SENTIMENT_EXAMPLES))
    student, base_student = scores["student"]["metrics"]["accuracy"], scores["base-student"]["metrics"]["accuracy"]
    assert comparison["delta"] == pytest.approx(student - base_student)
    assert comparison["low"] <= comparison["delta"] <= comparison["high"]
    expected = "better" if comparison["low"] > 0 else "worse" if comparison["high"] < 0 else "no clear difference"
    assert comparison["verdict"] == expected
    assert report["comparison_method"]["resamples"] == 2000

    text = render_markdown(report)
    assert "- **seed-only-student**: " in text and "| student − base-student |" in text
