"""Write what training produced: the LoRA adapter (peft layout) and a merged checkpoint (HF
layout, safetensors, tokenizer with its chat template) that serving and the ONNX exporter load
like any base model."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from services.trainer.devices import torch_dtype

log = logging.getLogger(__name__)

# Files of the base checkpoint that describe generation and are not weights; copied as they are.
_COPY_FROM_BASE = ("generation_config.json",)


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def save_adapter(model: nn.Module, tokenizer: Any, out_dir: Path, base_ref: str) -> Path:
    """peft's adapter_config.json + adapter_model.safetensors, plus the tokenizer."""
    _fresh(out_dir)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    config_path = out_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base_ref  # the catalog name, not this machine's cache path
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def save_merged(model: nn.Module, tokenizer: Any, out_dir: Path, base_dir: Path, dtype: str,
                auto_dtype: torch.dtype) -> Path:
    """Fold the adapter into the base weights (in place: the trained model is not used afterwards)
    and save a plain transformers checkpoint in ``dtype`` ("auto": ``auto_dtype``, the runtime's
    ``merged_dtype``)."""
    _fresh(out_dir)
    merge = getattr(model, "merge_and_unload", None)
    merged = merge() if callable(merge) else model
    merged = merged.to(device="cpu", dtype=torch_dtype(dtype, auto_dtype))
    merged.config.use_cache = True
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    for name in _COPY_FROM_BASE:
        if (base_dir / name).is_file() and not (out_dir / name).exists():
            shutil.copy2(base_dir / name, out_dir / name)
    return out_dir
