"""What the student trains on: the accepted synthetic rows, the user's seeds, and (for
classification) the teacher's label distribution.

- **Seeds in the mix.** The seeds are the only gold labels there are; a student trained on the
  synthetic rows alone never sees them. They are repeated so that they make up ``seed_share`` of
  each epoch's rows (never fewer than once each), and they are never carved off into the eval
  split: that split is drawn from the synthetic rows only (with no synthetic rows there is none).
- **Soft labels.** A classification row whose ``metadata.choice_probabilities`` holds the
  teacher's (calibrated) label distribution p becomes one weighted row per label k, weight
  ``soft_label_weight · p_k`` (+ ``1 − soft_label_weight`` on the row's own label). Summed
  cross-entropy over those rows is exactly Σ_k w_k · (−log q(label_k | x)): cross-entropy against
  the mixed target, i.e. KL(target ‖ student) + a constant, with q the student's probability of
  the whole label sequence. Labels below ``soft_label_min_probability`` are left out (they would
  cost a forward pass each for a vanishing share of the gradient); the rest is renormalized.

Everything is a pure function of (rows, seeds, config), so a resumed run rebuilds the same mix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from services.common.taskspec import Example, TaskSpec
from services.trainer.config import TrainingConfig
from services.trainer.data import split_eval

SEED_ORIGIN = "seed"


@dataclass
class Weighted:
    """One training row and how much its loss counts (1.0: a plain row)."""

    example: Example
    weight: float = 1.0


@dataclass
class TrainingMix:
    train: list[Weighted]
    eval: list[Example]
    stats: dict[str, Any] = field(default_factory=dict)


def seed_repeats(n_seeds: int, n_synthetic: int, share: float) -> int:
    """How often each seed appears per epoch so that seeds are ``share`` of the rows: r·S / (r·S + N)
    ≈ share → r = share·N / ((1 − share)·S), at least once. With no synthetic rows the seeds are the
    whole set and appear once each (epochs repeat them)."""
    if n_seeds == 0 or n_synthetic == 0 or share <= 0:
        return 1 if n_seeds else 0
    return max(1, round(share * n_synthetic / ((1.0 - share) * n_seeds)))


def teacher_distribution(spec: TaskSpec, example: Example) -> dict[str, float] | None:
    """The teacher's label distribution stored with a generated classification row, restricted to
    the task's labels and normalized; None when the row has none."""
    if spec.type != "classification":
        return None
    raw = (example.metadata or {}).get("choice_probabilities")
    if not isinstance(raw, dict):
        return None
    labels = set(spec.labels)
    probs = {str(k).strip(): float(v) for k, v in raw.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and str(k).strip() in labels}
    total = sum(probs.values())
    return {k: v / total for k, v in probs.items()} if total > 0 else None


def soft_rows(spec: TaskSpec, example: Example, alpha: float, min_probability: float) -> list[Weighted]:
    """One row → its weighted label rows (see the module docstring); the row itself when it has no
    teacher distribution or soft labels are off."""
    dist = teacher_distribution(spec, example) if alpha > 0 else None
    if not dist:
        return [Weighted(example)]
    kept = {k: p for k, p in dist.items() if p >= min_probability}
    total = sum(kept.values())
    weights = {k: alpha * p / total for k, p in kept.items()} if total > 0 else {}
    weights[example.output] = weights.get(example.output, 0.0) + (1.0 - alpha)
    return [Weighted(example if label == example.output else replace(example, output=label), weight)
            for label, weight in sorted(weights.items()) if weight > 0]


def build_mix(spec: TaskSpec, rows: Sequence[Example], seeds: Sequence[Example], config: TrainingConfig) -> TrainingMix:
    """The epoch's weighted training rows and the eval split (synthetic rows only, hard labels)."""
    train_idx, eval_idx = split_eval(len(rows), config.eval_fraction, config.seed)
    train: list[Weighted] = []
    for index in train_idx:
        train.extend(soft_rows(spec, rows[index], config.soft_label_weight, config.soft_label_min_probability))
    soft_expanded = len(train) - len(train_idx)
    repeats = seed_repeats(len(seeds), len(train_idx), config.seed_share)
    for seed in seeds:
        tagged = replace(seed, metadata={**(seed.metadata or {}), "origin": SEED_ORIGIN})
        train.extend(Weighted(tagged) for _ in range(repeats))
    stats = {"synthetic_rows": len(rows), "synthetic_train_rows": len(train_idx), "eval_rows": len(eval_idx),
             "seed_rows": len(seeds), "seed_repeats": repeats, "soft_label_extra_rows": soft_expanded,
             "seed_share_of_rows": round(len(seeds) * repeats / len(train), 4) if train else 0.0}
    return TrainingMix(train, [rows[i] for i in eval_idx], stats)


__all__ = ["SEED_ORIGIN", "TrainingMix", "Weighted", "build_mix", "seed_repeats", "soft_rows", "teacher_distribution"]
