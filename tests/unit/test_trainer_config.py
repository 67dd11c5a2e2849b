"""TrainingConfig parsing, batch plans and pickle-free checkpoints (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from services.common.errors import InvalidArgument
from services.trainer.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
)
from services.trainer.config import TrainingConfig, merge_settings
from services.trainer.data import Encoded, collate, padded_tokens, plan_epoch, split_eval


def test_defaults_and_struct_coercion() -> None:
    config = TrainingConfig()
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.05)
    assert config.target_modules == "all-linear" and config.lr == 2e-4
    assert TrainingConfig(full_finetune=True).lr == 2e-5
    # a google.protobuf.Struct turns every number into a float; int64 JSON into strings
    parsed = TrainingConfig.from_dict({"lora_r": 8.0, "epochs": "2", "learning_rate": 1e-3, "full_finetune": False,
                                       "target_modules": ["q_proj", "v_proj"], "schedule": "cosine"})
    assert parsed.lora_r == 8 and isinstance(parsed.lora_r, int) and parsed.epochs == 2
    assert parsed.lr == 1e-3 and parsed.target_modules == ["q_proj", "v_proj"]
    merged = merge_settings({"epochs": 5, "batch_size": 4}, {"epochs": 1})
    assert (merged.epochs, merged.batch_size) == (1, 4)


@pytest.mark.parametrize("data, fragment", [
    ({"lora_rank": 8}, "unknown training setting training.lora_rank; known keys of training: full_finetune"),
    ({"lora_r": 2.5}, "training.lora_r: expected an integer, got 2.5"),
    ({"schedule": "step"}, "schedule 'step' is not one of"),
    ({"eval_fraction": 0.95}, "eval_fraction must be in"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"full_finetune": "maybe"}, "training.full_finetune: expected true or false, got 'maybe'"),
    ({"target_modules": 3}, "training.target_modules: expected a string or a list, got 3"),
    ({"learning_rate": "fast"}, "training.learning_rate: expected a number, got 'fast'"),
])
def test_bad_config_is_invalid_argument(data: dict, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        TrainingConfig.from_dict(data)
    assert fragment in str(info.value)


def test_plans_are_deterministic_grouped_and_complete() -> None:
    lengths = [5 + (i * 37) % 120 for i in range(200)]
    a = plan_epoch(lengths, 8, seed=1, epoch=0, batching="length-grouped", max_seq_len=256)
    assert a == plan_epoch(lengths, 8, seed=1, epoch=0, batching="length-grouped", max_seq_len=256)
    assert a != plan_epoch(lengths, 8, seed=1, epoch=1, batching="length-grouped", max_seq_len=256)
    assert sorted(i for batch in a for row in batch for i in row) == list(range(200))
    items = [Encoded([1] * n, [-100] * n) for n in lengths]
    real, padded = padded_tokens(a, items)
    naive = [[[i] for i in range(j, min(j + 8, 200))] for j in range(0, 200, 8)]
    assert real / padded > 0.9 > (lambda r, p: r / p)(*padded_tokens(naive, items))
    packed = plan_epoch(lengths, 4, seed=1, epoch=0, batching="packed", max_seq_len=256)
    assert sorted(i for batch in packed for row in batch for i in row) == list(range(200))
    assert all(sum(lengths[i] for i in row) <= 256 for batch in packed for row in batch)


def test_collate_packed_restarts_positions() -> None:
    items = [Encoded([1, 2, 3], [-100, 2, 3]), Encoded([4, 5], [-100, 5]), Encoded([6], [-100])]
    out = collate([[0, 1], [2]], items, pad_id=0, packed=True)
    assert out["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 0, 1, 2, 3]]
    assert out["labels"].tolist() == [[-100, 2, 3, -100, 5], [-100] * 5]
    assert "attention_mask" not in out and int(out["tokens"]) == 6


def test_eval_split() -> None:
    train, held = split_eval(50, 0.1, seed=3)
    assert len(held) == 5 and not set(train) & set(held) and len(train) + len(held) == 50
    assert split_eval(50, 0.1, seed=3) == (train, held)
    assert split_eval(8, 0.2, seed=3)[1] == []  # too few to hold any out


def _optimizer(seed: int) -> tuple[torch.nn.Linear, torch.optim.AdamW]:
    torch.manual_seed(seed)
    layer = torch.nn.Linear(4, 3)
    return layer, torch.optim.AdamW(layer.parameters(), lr=1e-2, betas=(0.8, 0.95))


def _step(layer: torch.nn.Linear, optimizer: torch.optim.Optimizer) -> None:
    layer(torch.ones(2, 4)).pow(2).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_optimizer_roundtrip_without_pickle(tmp_path: Path) -> None:
    layer, optimizer = _optimizer(0)
    _step(layer, optimizer)
    root = tmp_path / "ckpt"
    for step in (1, 2, 3):
        save_checkpoint(root, step, dict(layer.named_parameters()), optimizer, {"step": step}, keep=2)
    (root / ".tmp-step-00000009-dead").mkdir()  # a write killed half-way is never listed
    assert [c.step for c in list_checkpoints(root)] == [2, 3]
    loaded = load_checkpoint(latest_checkpoint(root))
    assert loaded.state["step"] == 3 and set(loaded.trainable) == {"weight", "bias"}
    assert all(p.suffix in (".safetensors", ".json") for p in loaded_files(root))

    other, other_opt = _optimizer(1)
    with torch.no_grad():
        for name, param in other.named_parameters():
            param.copy_(loaded.trainable[name])
    other_opt.load_state_dict(loaded.optimizer)
    assert other_opt.param_groups[0]["betas"] == (0.8, 0.95)
    _step(layer, optimizer)
    _step(other, other_opt)
    torch.testing.assert_close(layer.weight, other.weight, rtol=0, atol=0)
    tensors, meta = optimizer_to_flat(optimizer)
    json.dumps(meta)
    assert optimizer_from_flat(tensors, meta)["state"].keys() == optimizer.state_dict()["state"].keys()


def loaded_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
