"""Tokenization with answer-only labels, and the loss paths (fast head, packing) agree with the
plain transformers forward, on the real default student."""

from __future__ import annotations

import pytest
import torch

from services.common.student_format import render_prompt
from services.common.taskspec import Example
from services.trainer.config import TrainingConfig
from services.trainer.data import IGNORE, collate, encode_all
from services.trainer.devices import Runtime
from services.trainer.loop import AnswerLoss, load_student
from tests.helpers.trainer_data import SPEC, student_path, train_rows


@pytest.fixture(scope="module")
def student(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, object]:
    import os

    cache = None if os.environ.get("DISTILLERY_TEST_STUDENT_DIR") else request.getfixturevalue("model_cache")
    path = student_path(cache)
    runtime = Runtime(torch.device("cpu"), torch.float32)
    model, tokenizer = load_student(path, TrainingConfig(lora_dropout=0.0), runtime)
    return model.eval(), tokenizer


def test_answer_only_labels_follow_the_serving_prompt(student) -> None:
    model, tokenizer = student
    examples = [Example.from_dict(row) for row in train_rows()[:4]]
    encoded, stats = encode_all(tokenizer, SPEC, examples, max_seq_len=256)
    assert stats.examples == 4 and stats.truncated == 0
    for example, item in zip(examples, encoded):
        prompt_len = item.labels.count(IGNORE)
        assert tokenizer.decode(item.input_ids[:prompt_len]) == render_prompt(tokenizer, SPEC, example.input)
        answer = [t for t in item.labels if t != IGNORE]
        assert tokenizer.decode(answer) == example.output + tokenizer.eos_token
    # too long: the answer is cut, a prompt that does not fit is skipped
    short, stats = encode_all(tokenizer, SPEC, examples, max_seq_len=len(encoded[0]) - 1)
    assert stats.truncated + stats.skipped_too_long >= 1
    # "all-linear" resolved to the projections present in the model (not the tied output head)
    assert set(model.peft_config["default"].target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                "up_proj", "down_proj"}


def test_fast_head_and_packing_match_the_plain_forward(student) -> None:
    model, tokenizer = student
    examples = [Example.from_dict(row) for row in train_rows()[:3]]
    encoded, _ = encode_all(tokenizer, SPEC, examples, max_seq_len=256)
    pad = tokenizer.pad_token_id
    loss = AnswerLoss(model)
    assert loss._fast
    grouped = collate([[0], [1], [2]], encoded, pad, packed=False)
    packed = collate([[0, 1, 2]], encoded, pad, packed=True)
    with torch.no_grad():
        out = model(input_ids=grouped["input_ids"], attention_mask=grouped["attention_mask"])
        logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
        reference = torch.nn.functional.cross_entropy(logits, grouped["labels"][:, 1:].reshape(-1), reduction="sum",
                                                      ignore_index=IGNORE)
        fast = loss(**{k: v for k, v in grouped.items() if k != "tokens"})
        loss._fast = False
        slow = loss(**{k: v for k, v in grouped.items() if k != "tokens"})
        loss._fast = True
        packed_loss = loss(**{k: v for k, v in packed.items() if k != "tokens"})
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(slow, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(packed_loss, reference, rtol=1e-4, atol=1e-4)
