"""Parity of an exported (and maybe quantized) model with the PyTorch checkpoint it came from,
on sample inputs: label agreement for classification (both sides score the label sequences under
the same constraint), top-1 token agreement otherwise (PyTorch's greedy continuation is fed to
both models; at each position we compare the most likely next token)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.common.taskspec import TaskSpec
from services.serving.runtime import OnnxGenerator

DEFAULT_INPUTS = (
    "The delivery was two weeks late and nobody answered my emails.",
    "I love how easy the new app is to use!",
    "What is the capital of France?",
    "Please move my meeting with Anna to Friday at 3pm.",
    "My card was charged twice for the same order.",
    "Summarize: the committee approved the budget after a long debate.",
    "How do I reset my password?",
    "The hotel room was clean, but the staff were rude.",
)
TEXT_TOKENS = 16


@dataclass
class ParityReport:
    metric: str  # "label_agreement" | "top1_token_agreement"
    agreement: float
    samples: int
    positions: int
    max_prob_diff: float = 0.0
    disagreements: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TorchReference:
    """The PyTorch checkpoint, fp32, eager: what the export has to match."""

    def __init__(self, checkpoint: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32,
                                                          attn_implementation="eager").eval()

    def logits(self, ids: list[int]) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(self.torch.tensor([ids]))
        return out.logits[0].float().numpy()

    def greedy(self, ids: list[int], n: int, eos: set[int]) -> list[int]:
        """Greedy continuation with the KV cache (stops at an end token, which it keeps)."""
        torch = self.torch
        new: list[int] = []
        with torch.inference_mode():
            out = self.model(torch.tensor([ids]), use_cache=True)
            for _ in range(n):
                token = int(out.logits[0, -1].argmax())
                new.append(token)
                if token in eos:
                    break
                out = self.model(torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
        return new


def check_parity(reference: TorchReference, generator: OnnxGenerator, spec: TaskSpec,
                 inputs: Sequence[tuple[str, str]]) -> ParityReport:
    """``inputs``: (text, context) pairs."""
    if spec.type == "classification" and generator.trie is not None:
        return _label_parity(reference, generator, inputs)
    return _token_parity(reference, generator, inputs)


def _label_parity(reference: TorchReference, generator: OnnxGenerator,
                  inputs: Sequence[tuple[str, str]]) -> ParityReport:
    trie = generator.trie
    assert trie is not None
    agree, max_diff, misses = 0, 0.0, []
    for text, context in inputs:
        prompt = generator.encode_prompt(text, context)
        steps = []
        for seq in trie.sequences:
            logits = reference.logits(prompt + seq)
            steps.append(logits[len(prompt) - 1:len(prompt) - 1 + len(seq)])
        torch_probs = trie.probabilities(steps)
        onnx_pred = generator.predict([text], [context])[0]
        torch_label = max(torch_probs, key=torch_probs.get)
        max_diff = max(max_diff, max(abs(torch_probs[k] - onnx_pred.label_probabilities[k]) for k in torch_probs))
        if torch_label == onnx_pred.output:
            agree += 1
        else:
            misses.append({"input": text[:200], "torch": torch_label, "onnx": onnx_pred.output})
    n = max(1, len(inputs))
    return ParityReport("label_agreement", agree / n, len(inputs), len(inputs), max_diff, misses[:5])


def _token_parity(reference: TorchReference, generator: OnnxGenerator,
                  inputs: Sequence[tuple[str, str]]) -> ParityReport:
    agree = total = 0
    misses = []
    for text, context in inputs:
        prompt = generator.encode_prompt(text, context)
        continuation = reference.greedy(prompt, TEXT_TOKENS, generator.eos_ids)
        full = prompt + continuation
        start = len(prompt) - 1
        torch_top = reference.logits(full)[start:len(full) - 1].argmax(-1)
        onnx_top = generator.forward_full(full)[start:len(full) - 1].argmax(-1)
        same = int((torch_top == onnx_top).sum())
        agree, total = agree + same, total + len(torch_top)
        if same < len(torch_top):
            misses.append({"input": text[:200], "positions": len(torch_top), "agree": same})
    return ParityReport("top1_token_agreement", agree / max(1, total), len(inputs), total, 0.0, misses[:5])
