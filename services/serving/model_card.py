"""The model card of an export: what the model is, how it was checked, and how to call it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any


def write_model_card(path_md: Path, card: dict[str, Any]) -> None:
    """``card``: name, version, task (TaskSpec dict), base, variants [{quantization, parity{...},
    accepted, reason, size_bytes}], min_parity. Writes MODEL_CARD.md and model_card.json beside it."""
    card = dict(card)
    card.setdefault("created", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    path_md.with_name("model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True))
    task = card.get("task") or {}
    lines = [
        f"# {card.get('name', 'student')} (version {card.get('version', '1')})",
        "",
        f"Distilled student for the task **{task.get('name', '')}** ({task.get('type', '')}).",
        "",
        task.get("description", "").strip(),
        "",
        "## Model",
        "",
        f"- merged checkpoint from: `{card.get('base', '')}`",
        f"- created: {card['created']}",
        "- prompt format: `services.common.student_format` (system prompt from the task + user turn, "
        "the student's own chat template)",
    ]
    if task.get("labels"):
        lines.append("- labels: " + ", ".join(f"`{label}`" for label in task["labels"]))
    lines += [
        "",
        "## ONNX variants and parity with PyTorch",
        "",
        f"Every variant is compared with the PyTorch checkpoint on sample inputs; a variant below "
        f"{card.get('min_parity', 0.9):.2f} is refused.",
        "",
        "| variant | metric | agreement | samples | positions | size (MB) | accepted | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in card.get("variants", []):
        parity = variant.get("parity") or {}
        lines.append(
            f"| {variant['quantization']} | {parity.get('metric', '')} | {parity.get('agreement', 0):.3f} | "
            f"{parity.get('samples', 0)} | {parity.get('positions', 0)} | "
            f"{variant.get('size_bytes', 0) / 1e6:.1f} | {'yes' if variant.get('accepted') else 'no'} | "
            f"{variant.get('reason', '')} |")
    gguf = card.get("gguf") or []
    if gguf:
        lines += ["", "## GGUF for llama.cpp and Ollama", "",
                  "Made with llama.cpp's own converter and quantizer from the merged checkpoint; `gguf/Modelfile` "
                  "carries the student's prompt and stop tokens (`ollama create NAME -f gguf/Modelfile`).", "",
                  "| file | size (MB) | note |", "|---|---|---|"]
        for entry in gguf:
            lines.append(f"| {entry.get('path') or entry.get('quantization')} | "
                         f"{entry.get('size_bytes', 0) / 1e6:.1f} | {entry.get('error') or 'ok'} |")
    lines += [
        "",
        "## Usage",
        "",
        "See `usage/` in this bundle: `tritonclient_grpc.py` (Open Inference Protocol v2), "
        "`openai_client.py` (OpenAI-compatible HTTP), `distillery_predict.py` (typed gRPC), `curl.sh`"
        + (", `run_llama_cpp.py` (llama-cpp-python on the GGUF), `ollama.sh`." if any(e.get("path") for e in gguf) else "."),
        "",
        "## Limitations",
        "",
        "A small student: it answers only this task, in this prompt format. Quantized variants trade "
        "some agreement with the fp32 model for speed (see the table).",
        "",
    ]
    path_md.write_text("\n".join(lines))
