"""What the student trains on (services/trainer/mix.py): seeds in the mix with their share, never
held out; soft-label rows whose weights are the teacher's distribution mixed with the hard label;
and the weighted loss normalisation that makes a split row count as one row."""

from __future__ import annotations

import pytest

from services.common.taskspec import Example, TaskSpec
from services.trainer.config import TrainingConfig
from services.trainer.data import Encoded, count_answer_tokens
from services.trainer.mix import SEED_ORIGIN, build_mix, seed_repeats, soft_rows, teacher_distribution

SPEC = TaskSpec(name="t", type="classification", description="d", labels=["a", "b", "c"])


def rows(n: int, label: str = "a", probs: dict[str, float] | None = None) -> list[Example]:
    meta = {"choice_probabilities": probs} if probs else {}
    return [Example(input=f"row {i}", output=label, metadata=dict(meta)) for i in range(n)]


def test_seed_repeats_keep_the_seed_share() -> None:
    assert seed_repeats(30, 300, 0.25) == 3  # 90 seed rows beside 300: 23% of the epoch
    assert seed_repeats(30, 10_000, 0.25) == 111
    assert seed_repeats(30, 10, 0.25) == 1  # never below once
    assert seed_repeats(30, 0, 0.25) == 1  # seeds alone
    assert seed_repeats(30, 300, 0.0) == 1
    assert seed_repeats(0, 300, 0.25) == 0


def test_seeds_are_in_the_mix_and_never_in_the_eval_split() -> None:
    seeds = [Example(input=f"seed {i}", output="b") for i in range(30)]
    mix = build_mix(SPEC, rows(300), seeds, TrainingConfig(eval_fraction=0.1, seed_share=0.25))
    assert len(mix.eval) == 30 and all(e.input.startswith("row") for e in mix.eval)
    seed_rows = [w for w in mix.train if w.example.metadata.get("origin") == SEED_ORIGIN]
    assert len(seed_rows) == 30 * mix.stats["seed_repeats"] and mix.stats["seed_repeats"] == 3  # 270 synthetic train rows
    assert {w.example.input for w in seed_rows} == {s.input for s in seeds}
    assert 0.2 <= mix.stats["seed_share_of_rows"] <= 0.3


def test_seeds_alone_train_a_student() -> None:
    seeds = [Example(input=f"seed {i}", output="b") for i in range(12)]
    mix = build_mix(SPEC, [], seeds, TrainingConfig(eval_fraction=0.1))
    assert len(mix.train) == 12 and mix.eval == []


def test_soft_rows_mix_the_teacher_distribution_with_the_hard_label() -> None:
    example = rows(1, "a", {"a": 0.6, "b": 0.3, "c": 0.1})[0]
    weighted = {w.example.output: w.weight for w in soft_rows(SPEC, example, alpha=0.5, min_probability=0.05)}
    assert weighted == pytest.approx({"a": 0.5 * 0.6 + 0.5, "b": 0.5 * 0.3, "c": 0.5 * 0.1})
    assert sum(weighted.values()) == pytest.approx(1.0)
    # below min_probability a label is dropped and the rest renormalized
    weighted = {w.example.output: w.weight for w in soft_rows(SPEC, example, alpha=1.0, min_probability=0.2)}
    assert weighted == pytest.approx({"a": 0.6 / 0.9, "b": 0.3 / 0.9})
    # off, or no distribution: the row as it is
    assert [w.weight for w in soft_rows(SPEC, example, alpha=0.0, min_probability=0.05)] == [1.0]
    assert [w.weight for w in soft_rows(SPEC, rows(1)[0], alpha=0.5, min_probability=0.05)] == [1.0]


def test_teacher_distribution_keeps_task_labels_only() -> None:
    example = Example(input="x", output="a", metadata={"choice_probabilities": {" a": 2.0, "b": 2.0, "zz": 5.0}})
    assert teacher_distribution(SPEC, example) == {"a": 0.5, "b": 0.5}
    other = TaskSpec(name="e", type="extraction", description="d", output_schema={"type": "object"})
    assert teacher_distribution(other, example) is None


def test_weighted_answer_tokens_normalise_a_split_row_as_one_row() -> None:
    plain = [Encoded([1, 2, 3], [-100, 2, 3])]
    split = [Encoded([1, 2, 3], [-100, 2, 3], weight=0.7), Encoded([1, 4, 5], [-100, 4, 5], weight=0.3)]
    assert count_answer_tokens([[0]], plain) == 2
    assert count_answer_tokens([[0], [1]], split) == pytest.approx(2.0)


def test_new_settings_are_checked() -> None:
    with pytest.raises(Exception, match="seed_share"):
        TrainingConfig(seed_share=1.0)
    with pytest.raises(Exception, match="soft_label_weight"):
        TrainingConfig(soft_label_weight=1.5)
    assert TrainingConfig.from_dict({"soft_label_weight": 0.5, "train_loss_patience": 3.0}).train_loss_patience == 3
