"""Paired bootstrap intervals: verdict words, reproducibility, the interval's width against the
normal approximation, and corpus metrics (macro F1, micro field F1) recomputed on a resample
exactly as the metric modules compute them on the resampled test set."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from services.evaluator import bootstrap
from services.evaluator.metrics import classification, extraction, qa

LABELS = ["positive", "negative", "neutral"]


def _expand(counts: np.ndarray) -> list[int]:
    """A row of draw counts → the example indices it stands for."""
    return [i for i, c in enumerate(counts.astype(int)) for _ in range(c)]


@pytest.mark.parametrize(("low", "high", "word"), [
    (0.01, 0.2, "better"), (-0.2, -0.01, "worse"), (0.0, 0.2, "no clear difference"),
    (-0.2, 0.0, "no clear difference"), (-0.1, 0.1, "no clear difference"), (0.0, 0.0, "no clear difference"),
])
def test_verdict_needs_the_whole_interval_on_one_side(low: float, high: float, word: str) -> None:
    assert bootstrap.verdict(low, high) == word


def test_identical_candidates_tie_exactly() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    same = bootstrap.compare("a", bootstrap.mean_statistic(values), "b", bootstrap.mean_statistic(values), "accuracy")
    assert (same.delta, same.low, same.high, same.n, same.verdict) == (0.0, 0.0, 0.0, 8, "no clear difference")


def test_every_example_better_is_better_and_the_reverse_is_worse() -> None:
    right, wrong = bootstrap.mean_statistic([1.0] * 20), bootstrap.mean_statistic([0.0] * 20)
    win = bootstrap.compare("student", right, "seed-only-student", wrong, "accuracy")
    assert (win.delta, win.low, win.high, win.verdict) == (1.0, 1.0, 1.0, "better")
    loss = bootstrap.compare("student", wrong, "teacher", right, "accuracy")
    assert (loss.delta, loss.verdict) == (-1.0, "worse")
    assert loss.to_dict() == {"a": "student", "b": "teacher", "metric": "accuracy", "delta": -1.0, "low": -1.0,
                              "high": -1.0, "n": 20, "verdict": "worse"}


def test_a_small_lead_on_few_examples_is_no_clear_difference() -> None:
    # 6/10 against 5/10, disagreeing on 3 examples: a +0.1 lead that resampling easily reverses.
    a = bootstrap.mean_statistic([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    b = bootstrap.mean_statistic([1, 1, 1, 1, 0, 0, 1, 0, 0, 0])
    result = bootstrap.compare("student", a, "seed-only-student", b, "accuracy")
    assert result.delta == pytest.approx(0.1)
    assert result.low < 0 < result.high and result.verdict == "no clear difference"


def test_fixed_seed_reproduces_the_interval_and_another_seed_moves_it() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.random(60), rng.random(60)
    first = bootstrap.paired_bootstrap(bootstrap.mean_statistic(a), bootstrap.mean_statistic(b))
    assert bootstrap.paired_bootstrap(bootstrap.mean_statistic(a), bootstrap.mean_statistic(b)) == first
    other = bootstrap.paired_bootstrap(bootstrap.mean_statistic(a), bootstrap.mean_statistic(b), seed=1)
    assert other[0] == first[0] and other[1:] != first[1:]


def test_interval_width_matches_the_paired_normal_approximation() -> None:
    """For a mean of 400 paired 0/1 outcomes the percentile interval is close to
    delta ± 1.96 · sd(a − b) / √n: the pairing (not two independent samples) sets the width."""
    rng = np.random.default_rng(3)
    shared = rng.random(400) < 0.6  # the examples both get right or wrong together
    a = np.where(rng.random(400) < 0.85, shared, ~shared).astype(float)
    b = np.where(rng.random(400) < 0.85, shared, rng.random(400) < 0.5).astype(float)
    delta, low, high = bootstrap.paired_bootstrap(bootstrap.mean_statistic(a), bootstrap.mean_statistic(b),
                                                  resamples=4000)
    half = 1.96 * np.std(a - b, ddof=1) / math.sqrt(400)
    assert delta == pytest.approx(a.mean() - b.mean())
    assert (high - low) / 2 == pytest.approx(half, rel=0.12)
    assert low < delta < high
    independent = 1.96 * math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 400)
    assert (high - low) / 2 < 0.9 * independent  # positively correlated pairs: narrower


def test_macro_f1_is_recomputed_on_each_resample() -> None:
    golds = ["positive", "positive", "negative", "neutral", "negative", "neutral", "positive", "negative"]
    preds = ["positive", "negative", "negative", "banana", "Negative.", "neutral", "neutral", "positive"]
    scores = classification.evaluate(golds, preds, LABELS)
    statistic = bootstrap.metric_statistic("macro_f1", scores, golds, LABELS)
    assert statistic is not None and statistic.value() == pytest.approx(scores.metrics["macro_f1"])
    for counts in bootstrap.resample_counts(len(golds), resamples=25, seed=5):
        picked = _expand(counts)
        expected = classification.evaluate([golds[i] for i in picked], [preds[i] for i in picked], LABELS)
        assert float(statistic.reduce(counts @ statistic.features, len(golds))) == \
            pytest.approx(expected.metrics["macro_f1"])


def test_field_f1_is_recomputed_from_the_resampled_counts() -> None:
    golds = ['{"name":"Ada","city":"Paris"}', '{"name":"Bob","age":30}', '{"tags":["a","b","c"]}', '{}',
             '{"name":"Eve"}']
    preds = ['{"name":"Ada","city":"London"}', '{"name":"Bob","age":30.0}', 'not json', '{}', '{"name":"Eve","x":1}']
    scores = extraction.evaluate(golds, preds)
    for metric in ("field_f1", "field_precision", "field_recall"):
        statistic = bootstrap.metric_statistic(metric, scores, golds)
        assert statistic is not None and statistic.value() == pytest.approx(scores.metrics[metric])
        for counts in bootstrap.resample_counts(len(golds), resamples=25, seed=2):
            picked = _expand(counts)
            expected = extraction.evaluate([golds[i] for i in picked], [preds[i] for i in picked])
            assert float(statistic.reduce(counts @ statistic.features, len(golds))) == \
                pytest.approx(expected.metrics[metric])
    # Only the empty example drawn: both sides empty scores 1.0, as metrics.extraction.prf says.
    statistic = bootstrap.metric_statistic("field_f1", scores, golds)
    only_empty = np.array([[0.0, 0.0, 0.0, 5.0, 0.0]])
    assert float(statistic.reduce(only_empty @ statistic.features, 5)[0]) == 1.0


def test_per_example_means_use_the_example_scores_and_unknown_forms_are_refused() -> None:
    golds, preds = ["Paris", "the red fox", "1912"], ["paris", "red dog", ""]
    scores = qa.evaluate(golds, preds)
    statistic = bootstrap.metric_statistic("token_f1", scores, golds)
    assert statistic is not None and statistic.value() == pytest.approx(scores.metrics["token_f1"])
    # exact_match is not the mean of the per-example credit (token F1): no interval, not a wrong one.
    assert bootstrap.metric_statistic("exact_match", scores, golds) is None
    assert bootstrap.metric_statistic("no_such_metric", scores, golds) is None


def test_pooled_runs_average_the_difference_on_one_resample_of_the_examples() -> None:
    rng = np.random.default_rng(11)
    gold_right = rng.random(80) < 0.5
    runs = [(bootstrap.mean_statistic((gold_right | (rng.random(80) < p)).astype(float)),
             bootstrap.mean_statistic(gold_right.astype(float))) for p in (0.2, 0.3, 0.25)]
    delta, low, high = bootstrap.pooled_paired_bootstrap(runs)
    assert delta == pytest.approx(np.mean([a.value() - b.value() for a, b in runs]))
    assert 0 < low < delta < high
    assert bootstrap.pooled_paired_bootstrap(runs[:1]) == bootstrap.paired_bootstrap(*runs[0])
    with pytest.raises(ValueError, match="same non-empty examples"):
        bootstrap.pooled_paired_bootstrap([runs[0], (bootstrap.mean_statistic([1.0]), bootstrap.mean_statistic([0.0]))])


def test_statistics_rebuilt_from_prediction_rows() -> None:
    golds = ['{"name":"Ada","city":"Paris"}', '{"name":"Bob"}']
    preds = ['{"name":"Ada"}', '{"name":"Bob"}']
    scores = extraction.evaluate(golds, preds)
    # What predictions.jsonl holds per example (the handler writes score and details).
    rows = [json.loads(json.dumps({"index": i, "score": e.score, "details": e.details}))
            for i, e in enumerate(scores.examples)]
    statistic = bootstrap.statistic_from_rows("field_f1", rows)
    assert statistic is not None and statistic.value() == pytest.approx(scores.metrics["field_f1"])
    assert bootstrap.statistic_from_rows("accuracy", [{"score": 1.0}, {"score": 0.0}]).value() == 0.5
    assert bootstrap.statistic_from_rows("macro_f1", rows) is None
    assert bootstrap.statistic_from_rows("accuracy", []) is None
