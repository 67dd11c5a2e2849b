"""Resumable training checkpoints without pickle.

A checkpoint is a directory ``step-00000050/`` holding
- ``trainable.safetensors``: every trainable parameter (the LoRA adapter, or the whole model),
- ``optimizer.safetensors`` + the optimizer's param groups and scalar state in ``state.json``,
- ``rng.safetensors``: torch's CPU (and CUDA) generator states, so dropout continues identically,
- ``state.json``: step, epoch, position in the epoch's batch plan, loss history, early-stopping
  state, scheduler state, and a fingerprint of the run (config + data) it belongs to.

It is written into a temporary directory, fsynced and renamed into place, so a ``kill -9`` at any
moment leaves either the complete checkpoint or none; the newest ``keep`` are kept. Loading
never unpickles anything (the rule is: no pickle loading), which is why torch.save is not used.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from services.common.errors import DataLoss

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step-(\d{8})$")
STATE = "state.json"


@dataclass
class Checkpoint:
    path: Path
    step: int

    def state(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / STATE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataLoss(f"checkpoint {self.path}: {STATE} is unreadable: {exc}") from None


def list_checkpoints(root: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first (temporary directories are never listed)."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / STATE).is_file():
            found.append(Checkpoint(child, int(match.group(1))))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(root: Path) -> Checkpoint | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state → (tensors for safetensors, JSON-able rest)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
              for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = []
    for group in meta["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = state
    return tensors


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["cpu"])
    if torch.cuda.is_available():
        states = [tensors[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in tensors]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def save_checkpoint(root: Path, step: int, trainable: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, state: dict[str, Any], keep: int) -> Path:
    """Write atomically (tmp dir + fsync + rename) and prune to the newest ``keep``."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        opt_tensors, opt_meta = optimizer_to_flat(optimizer)
        save_file(_contiguous(trainable), str(tmp / "trainable.safetensors"))
        save_file(_contiguous(opt_tensors), str(tmp / "optimizer.safetensors"))
        save_file(_contiguous(rng_tensors()), str(tmp / "rng.safetensors"))
        payload = dict(state)
        payload["optimizer"] = opt_meta
        (tmp / STATE).write_text(json.dumps(payload, indent=1, sort_keys=True))
        for child in tmp.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if final.exists():  # a re-run of the same step after a crash right after the rename
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):  # left by a kill -9 during an earlier write
        shutil.rmtree(stale, ignore_errors=True)
    return final


@dataclass
class LoadedCheckpoint:
    step: int
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]
    state: dict[str, Any]


def load_checkpoint(checkpoint: Checkpoint) -> LoadedCheckpoint:
    state = checkpoint.state()
    try:
        trainable = load_file(str(checkpoint.path / "trainable.safetensors"))
        opt_tensors = load_file(str(checkpoint.path / "optimizer.safetensors"))
        rng = load_file(str(checkpoint.path / "rng.safetensors"))
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise DataLoss(f"checkpoint {checkpoint.path} is damaged: {exc}") from None
    optimizer = optimizer_from_flat(opt_tensors, state.pop("optimizer"))
    return LoadedCheckpoint(checkpoint.step, trainable, optimizer, rng, state)
