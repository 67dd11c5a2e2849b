"""Merged HF checkpoint → ONNX (optimum-onnx ``text-generation-with-past``: one ``model.onnx`` with
KV-cache inputs/outputs), with the tokenizer and configs beside it so the directory is
self-contained for ``OnnxGenerator``."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from services.common.errors import InvalidArgument, NotFound, UnsafeModelError

log = logging.getLogger(__name__)
TASK = "text-generation-with-past"


def check_checkpoint(checkpoint: Path) -> None:
    """A loadable, safe HF checkpoint: config.json and safetensors weights (no pickles)."""
    if not checkpoint.is_dir():
        raise NotFound(f"{checkpoint}: checkpoint directory does not exist")
    if not (checkpoint / "config.json").exists():
        raise InvalidArgument(f"{checkpoint}: no config.json; expected a merged transformers checkpoint")
    if not list(checkpoint.glob("*.safetensors")):
        if list(checkpoint.glob("*.bin")) or list(checkpoint.glob("*.pt")):
            raise UnsafeModelError(f"{checkpoint}: only pickle weights (.bin/.pt); save it with "
                                   "save_pretrained(safe_serialization=True)")
        raise InvalidArgument(f"{checkpoint}: no *.safetensors weights")


def export_onnx(checkpoint: Path, out_dir: Path, opset: int | None = None) -> Path:
    """Export ``checkpoint`` into ``out_dir`` (created; replaced if it holds a partial export)."""
    from optimum.exporters.onnx import main_export
    from transformers import AutoTokenizer

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    check_checkpoint(checkpoint)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log.info("exporting %s to ONNX (%s)", checkpoint, TASK)
    # Validation is our own parity check (against the runtime that will serve it), not optimum's.
    main_export(str(checkpoint), partial, task=TASK, opset=opset, device="cpu", do_validation=False,
                local_files_only=True, library_name="transformers")
    AutoTokenizer.from_pretrained(str(checkpoint)).save_pretrained(str(partial))
    for name in ("generation_config.json",):
        if (checkpoint / name).exists() and not (partial / name).exists():
            shutil.copy2(checkpoint / name, partial / name)
    if not (partial / "model.onnx").exists():
        raise InvalidArgument(f"optimum wrote no model.onnx for {checkpoint}; is it a decoder-only model?")
    partial.rename(out_dir)
    return out_dir
