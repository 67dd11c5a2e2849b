"""onnxruntime-genai side of benchmarks/serving.py: its model builder (the ONNX graph with fused
GroupQueryAttention, rotary embedding and skip-layer-norms, int4 through MatMulNBits) turns the same
checkpoint into a genai model folder, and its C++ generation loop decodes it. Measured beside our
ONNX Runtime loop on the same token ids:

- decode tokens/s: greedy, exactly ``tokens`` new tokens (min_length = max_length), prefill included;
- classification latency: one forward pass over the rendered prompt and the labels' first tokens
  (as PyTorch's and llama.cpp's rows);
- parity against PyTorch: top-1 token agreement with PyTorch's greedy continuation fed back one
  token at a time, and label agreement on the headlines.

onnxruntime-genai 0.11.2 is the newest release whose builder imports with transformers 4.57 (the
pin optimum-onnx needs); 0.18's builder needs a newer transformers."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# int4 with k_quant_mixed (some MatMuls int8): of the builder's int4 recipes it kept the most
# answers on SmolLM2-135M (top-1 0.71; default RTN 0.62, k_quant_last 0.69; measured 2026-12-04).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "fp32": ("fp32", []),
    "int4": ("int4", ["int4_algo_config=k_quant_mixed", "int4_accuracy_level=4"]),
}


def available() -> str:
    """"" when onnxruntime-genai imports, else why not (the result records it)."""
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError as exc:
        return f"onnxruntime-genai is not installed ({exc})"
    return ""


def build(checkpoint: Path, out: Path, kind: str, threads: int) -> Path:
    """The builder's model folder for ``kind`` (cached: a folder with genai_config.json is whole,
    since the builder writes it last), with ``threads`` intra-op threads in its session options."""
    precision, extra = VARIANTS[kind]
    if not (out / "genai_config.json").exists():
        command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint), "-o", str(out),
                   "-p", precision, "-e", "cpu", "-c", str(out.parent / "genai-cache")]
        if extra:
            command += ["--extra_options", *extra]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0 or not (out / "genai_config.json").exists():
            raise RuntimeError(f"onnxruntime-genai builder failed for {kind}: {done.stderr[-2000:]}")
    config_path = out / "genai_config.json"
    config = json.loads(config_path.read_text())
    config["model"]["decoder"]["session_options"]["intra_op_num_threads"] = threads
    config_path.write_text(json.dumps(config, indent=4))
    return out


class GenaiModel:
    """One built variant, loaded once."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime_genai as og

        self.og = og
        self.model = og.Model(str(folder))

    def _generator(self, max_length: int, min_length: int = 0):
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length, min_length=min_length, do_sample=False)
        return self.og.Generator(self.model, params)

    def _last_logits(self, generator) -> np.ndarray:
        logits = np.asarray(generator.get_logits())
        return logits.reshape(-1, logits.shape[-1])[-1]

    def decode(self, prompts: list[list[int]], tokens: int) -> float:
        """One repeat: the median tokens/s over the prompts."""
        rates = []
        for ids in prompts:
            generator = self._generator(len(ids) + tokens, len(ids) + tokens)
            start = time.perf_counter()
            generator.append_tokens(ids)
            produced = 0
            while not generator.is_done():
                generator.generate_next_token()
                produced += 1
            rates.append(produced / (time.perf_counter() - start))
        return statistics.median(rates)

    def first_token_label(self, ids: list[int], first_tokens: list[int]) -> tuple[int, float]:
        """(index of the label whose first token scores highest, milliseconds of the forward pass)."""
        generator = self._generator(len(ids) + 1)
        start = time.perf_counter()
        generator.append_tokens(ids)
        logits = self._last_logits(generator)
        choice = int(np.argmax(logits[first_tokens]))
        return choice, (time.perf_counter() - start) * 1000

    def top1_agreement(self, prompt: list[int], continuation: list[int], reference_top: np.ndarray) -> tuple[int, int]:
        """PyTorch's continuation fed back one token at a time; (positions where genai's most likely
        next token is PyTorch's, positions)."""
        generator = self._generator(len(prompt) + len(continuation) + 1)
        generator.append_tokens(prompt)
        tops = [int(self._last_logits(generator).argmax())]
        for token in continuation[:-1]:
            generator.append_tokens([token])
            tops.append(int(self._last_logits(generator).argmax()))
        return int((np.asarray(tops) == reference_top[:len(tops)]).sum()), len(tops)
