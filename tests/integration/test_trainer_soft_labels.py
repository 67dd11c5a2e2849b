"""Soft-label distillation on the real default student: trained on the teacher's label
distribution (services/trainer/mix.py), the student's distribution over the labels ends closer to
the teacher's (lower KL) than the same student trained on the same rows with hard labels, and
closer than it started."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from services.common.taskspec import Example
from services.trainer.config import TrainingConfig
from services.trainer.data import encode_example
from services.trainer.devices import Runtime
from services.trainer.loop import train
from tests.helpers.trainer_data import NEGATIVE, POSITIVE, SPEC, student_path

# A teacher that is sure of most reviews and unsure of some: what a calibrated teacher looks like.
TEACHER = [0.9, 0.7, 0.6]


def teacher_rows() -> list[Example]:
    rows = []
    for i, (pos, neg) in enumerate(zip(POSITIVE[:8], NEGATIVE[:8])):
        p = TEACHER[i % len(TEACHER)]
        rows.append(Example(input=pos, output="positive", metadata={"choice_probabilities": {"positive": p, "negative": 1 - p}}))
        rows.append(Example(input=neg, output="negative", metadata={"choice_probabilities": {"positive": 1 - p, "negative": p}}))
    return rows


def label_distribution(model: torch.nn.Module, tokenizer, text: str) -> dict[str, float]:
    """The student's probability of each whole label answer (label tokens + eos), renormalized
    over the task's labels: the sequence-level distribution the soft-label loss targets."""
    scores = {}
    for label in SPEC.labels:
        item, _ = encode_example(tokenizer, SPEC, Example(input=text, output=label), 256)
        assert item is not None
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].float()
        targets = torch.tensor(item.labels[1:])
        mask = targets != -100
        scores[label] = float(torch.log_softmax(logits[mask], -1).gather(1, targets[mask][:, None]).sum())
    top = max(scores.values())
    total = sum(math.exp(v - top) for v in scores.values())
    return {k: math.exp(v - top) / total for k, v in scores.items()}


def mean_kl(model, tokenizer, rows: list[Example]) -> float:
    kls = []
    for row in rows:
        teacher = row.metadata["choice_probabilities"]
        student = label_distribution(model, tokenizer, row.input)
        kls.append(sum(p * math.log(p / max(student[k], 1e-9)) for k, p in teacher.items()))
    return sum(kls) / len(kls)


@pytest.fixture(scope="module")
def student(request: pytest.FixtureRequest) -> Path:
    cache = None if os.environ.get("DISTILLERY_TEST_STUDENT_DIR") else request.getfixturevalue("model_cache")
    return student_path(cache)


def test_soft_labels_bring_the_student_closer_to_the_teacher(student: Path, tmp_path: Path) -> None:
    rows = teacher_rows()
    runtime = Runtime(torch.device("cpu"), torch.float32)
    common = {"max_steps": 16, "batch_size": 8, "learning_rate": 1e-3, "eval_fraction": 0.0, "lora_dropout": 0.0,
              "checkpoint_every_steps": 0, "max_seq_len": 96, "seed": 3}
    hard = train(student, SPEC, rows, TrainingConfig(**common), tmp_path / "hard", runtime)
    soft = train(student, SPEC, rows, TrainingConfig(**common, soft_label_weight=1.0), tmp_path / "soft", runtime)
    assert soft.metrics["mix"]["soft_label_extra_rows"] == len(rows)  # every row became two weighted rows
    hard_kl = mean_kl(hard.model.eval(), hard.tokenizer, rows)
    soft_kl = mean_kl(soft.model.eval(), soft.tokenizer, rows)
    with soft.model.disable_adapter():
        base_kl = mean_kl(soft.model, soft.tokenizer, rows)
    assert soft_kl < hard_kl, (soft_kl, hard_kl)
    assert soft_kl < base_kl, (soft_kl, base_kl)
