"""Paired bootstrap intervals for the differences the report shows.

Every candidate answers the same test examples, so a difference between two of them is measured
on paired data: resampling *examples* (with replacement) and recomputing both candidates' metric
on each resample keeps the pairing and gives an interval for ``metric(a) − metric(b)``. Without
it, a 0.03 lead on 100 examples reads like a win when it is noise; with it, a verdict says
"better" only when the whole 95% interval is above 0.

A metric is expressed as per-example *features* whose column sums determine it (a
:class:`Statistic`): a per-example mean (accuracy's 0/1 correctness, token F1, staged score) is
one column; a corpus-level metric that is not a mean of per-example values is recomputed from
its counts on each resample — micro field F1 from (true positives, predicted, gold fields), macro
F1 from per-label (tp, predicted, gold). A resample is then a vector of draw counts per example,
and all resamples of both candidates are two matrix products: exact, and fast for thousands of
resamples. The random generator has a fixed seed, so the same predictions give the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from services.evaluator.metrics.common import TaskScores

BETTER, WORSE, NO_CLEAR_DIFFERENCE = "better", "worse", "no clear difference"
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
# A statistic must reproduce the reported metric to this tolerance, or it is not compared.
_TOLERANCE = 1e-9
_DIGITS = 12

Reduce = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Statistic:
    """A metric as a function of per-example feature sums.

    ``features`` is (examples × k); ``reduce(sums, n)`` maps column sums over a sample of ``n``
    examples (shape ``(..., k)``) to the metric's value (shape ``(...)``)."""

    features: np.ndarray
    reduce: Reduce

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    def value(self) -> float:
        """The metric on the whole test set (what the report's table shows)."""
        return float(self.reduce(self.features.sum(axis=0), self.n))


@dataclass(frozen=True)
class Comparison:
    """``delta`` = metric(a) − metric(b) on the same ``n`` examples, with the bootstrap interval
    [low, high] and the verdict it supports. Field names are the contract of the
    ``Comparison`` message the pipeline reads."""

    a: str
    b: str
    metric: str
    delta: float
    low: float
    high: float
    n: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(low: float, high: float) -> str:
    """"better" only when the interval is above 0, "worse" only when it is below 0."""
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return NO_CLEAR_DIFFERENCE


# ----- statistics -------------------------------------------------------------------------------
def _mean(sums: np.ndarray, n: int) -> np.ndarray:
    return sums[..., 0] / max(1, n)


def mean_statistic(values: Sequence[float]) -> Statistic:
    """A metric that is the mean of per-example values (0/1 correctness, token F1, ...)."""
    return Statistic(np.asarray(values, dtype=float).reshape(-1, 1), _mean)


def _f1_from_counts(tp: np.ndarray, predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """F1 = 2·tp / (predicted + gold), the same as 2PR/(P+R); 1.0 where both sides are empty
    (``metrics.extraction.prf``'s convention), 0 where only one is."""
    total = predicted + gold
    return np.where(total > 0, 2.0 * tp / np.where(total > 0, total, 1.0), 1.0)


def field_statistic(tp: Sequence[int], predicted: Sequence[int], gold: Sequence[int], which: str = "f1") -> Statistic:
    """Micro-averaged field precision / recall / F1 (extraction): recomputed from the summed counts."""

    def reduce(sums: np.ndarray, n: int) -> np.ndarray:
        t, p, g = sums[..., 0], sums[..., 1], sums[..., 2]
        if which == "precision":
            return np.where(p > 0, t / np.where(p > 0, p, 1.0), np.where(g == 0, 1.0, 0.0))
        if which == "recall":
            return np.where(g > 0, t / np.where(g > 0, g, 1.0), np.where(p == 0, 1.0, 0.0))
        return _f1_from_counts(t, p, g)

    return Statistic(np.column_stack([tp, predicted, gold]).astype(float), reduce)


def macro_f1_statistic(golds: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> Statistic:
    """Macro F1 over the labels present in a sample's gold answers or valid predictions (the rule
    of ``metrics.classification``), recomputed from per-label (tp, predicted, gold) counts.
    ``predicted`` holds the label each example was read as, ``None`` for a malformed answer."""
    universe = list(labels) + sorted({g for g in golds if g not in labels})
    index = {label: i for i, label in enumerate(universe)}
    width = len(universe)
    features = np.zeros((len(golds), 3 * width))
    for row, (gold, pred) in enumerate(zip(golds, predicted)):
        if pred in index:  # a malformed answer predicts no label
            features[row, width + index[pred]] = 1.0
        features[row, 2 * width + index[gold]] = 1.0
        if pred == gold:
            features[row, index[gold]] = 1.0

    def reduce(sums: np.ndarray, n: int) -> np.ndarray:
        tp, p, g = sums[..., :width], sums[..., width:2 * width], sums[..., 2 * width:]
        present = (p + g) > 0
        f1 = np.where(present, 2.0 * tp / np.where(present, p + g, 1.0), 0.0)
        count = present.sum(axis=-1)
        return np.where(count > 0, f1.sum(axis=-1) / np.maximum(count, 1), 0.0)

    return Statistic(features, reduce)


def metric_statistic(metric: str, scores: TaskScores, golds: Sequence[str],
                     labels: Sequence[str] = ()) -> Statistic | None:
    """The Statistic that reproduces ``scores.metrics[metric]``, or None when none is known (then
    the difference is not given an interval rather than given a wrong one)."""
    if metric not in scores.metrics or not scores.examples:
        return None
    statistic: Statistic | None
    if metric == "macro_f1":
        statistic = macro_f1_statistic(golds, [e.details.get("label") for e in scores.examples], labels)
    elif metric in ("field_f1", "field_precision", "field_recall"):
        details = [e.details for e in scores.examples]
        statistic = field_statistic([d["tp"] for d in details], [d["predicted_fields"] for d in details],
                                    [d["gold_fields"] for d in details], metric.removeprefix("field_"))
    else:  # the per-example credit, when the metric is its mean (every primary metric but field_f1)
        statistic = mean_statistic([e.score for e in scores.examples])
    if abs(statistic.value() - scores.metrics[metric]) > _TOLERANCE:
        return None
    return statistic


# ----- the bootstrap ----------------------------------------------------------------------------
def resample_counts(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(resamples × n): how often each example is drawn in each resample of n draws with
    replacement. The same matrix is applied to both candidates: that is the pairing."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


def paired_bootstrap(a: Statistic, b: Statistic, *, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                     confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(delta, low, high): the observed difference a − b and its percentile interval."""
    return pooled_paired_bootstrap([(a, b)], resamples=resamples, seed=seed, confidence=confidence)


def compare(a_name: str, a: Statistic, b_name: str, b: Statistic, metric: str, *,
            resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Comparison:
    delta, low, high = paired_bootstrap(a, b, resamples=resamples, seed=seed)
    return Comparison(a=a_name, b=b_name, metric=metric, delta=delta, low=low, high=high, n=a.n,
                      verdict=verdict(low, high))


# ----- several runs ---------------------------------------------------------------------------
def statistic_from_rows(metric: str, rows: Sequence[dict[str, Any]]) -> Statistic | None:
    """A candidate's Statistic rebuilt from its rows of ``predictions.jsonl`` (``score`` and
    ``details`` per example, ordered by example), for comparisons made after the evaluation, such
    as across training seeds. None for a metric that needs more than the rows hold."""
    if not rows:
        return None
    if metric in ("field_f1", "field_precision", "field_recall"):
        details = [r.get("details") or {} for r in rows]
        if not all({"tp", "predicted_fields", "gold_fields"} <= set(d) for d in details):
            return None
        return field_statistic([d["tp"] for d in details], [d["predicted_fields"] for d in details],
                               [d["gold_fields"] for d in details], metric.removeprefix("field_"))
    if metric == "macro_f1":
        return None  # needs every label of the task, which the rows do not carry
    return mean_statistic([float(r["score"]) for r in rows])


def pooled_paired_bootstrap(pairs: Sequence[tuple[Statistic, Statistic]], *, resamples: int = DEFAULT_RESAMPLES,
                            seed: int = DEFAULT_SEED,
                            confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(delta, low, high) of the difference averaged over several runs (say, students trained with
    different seeds) scored on the same examples: each resample draws the examples once and
    applies that draw to every run, so the interval is for the mean difference over those runs on
    this test distribution. The runs are taken as given; their spread is reported beside it."""
    sizes = {s.n for pair in pairs for s in pair}
    if not pairs or len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"pooled bootstrap needs runs on the same non-empty examples (sizes {sorted(sizes)})")
    n = sizes.pop()
    counts = resample_counts(n, resamples, seed)
    deltas = np.mean([a.reduce(counts @ a.features, n) - b.reduce(counts @ b.features, n) for a, b in pairs], axis=0)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(deltas, [tail, 100.0 - tail])
    observed = float(np.mean([a.value() - b.value() for a, b in pairs]))
    return round(observed, _DIGITS), round(float(low), _DIGITS), round(float(high), _DIGITS)
