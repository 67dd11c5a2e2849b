"""The teacher behind one interface: a batch of prompts + one decoding constraint → outputs.

Two implementations: ``vllm_backend.VllmBackend`` (in-process ``vllm.LLM``) and
``openai_backend.OpenAIBackend`` (any OpenAI-compatible server). Everything else in the
generator talks to this interface only, so it never imports vllm."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

# A prompt is raw text (a few-shot continuation for a base model) or a chat (list of messages).
PromptInput = str | list[dict[str, str]]


@dataclass(frozen=True)
class Constraint:
    """A structured-output constraint, as vLLM's ``StructuredOutputsParams`` expresses it."""

    kind: str = "none"  # "none" | "choice" | "json" | "regex"
    choices: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    regex: str = ""

    @classmethod
    def choice(cls, choices: list[str] | tuple[str, ...]) -> Constraint:
        return cls(kind="choice", choices=tuple(choices))

    @classmethod
    def json_schema(cls, schema: dict[str, Any]) -> Constraint:
        return cls(kind="json", schema=schema)

    def structured_outputs(self) -> dict[str, Any] | None:
        """The request-body form vLLM accepts (``structured_outputs: {...}``)."""
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        if self.kind == "json":
            # Compact JSON: fewer tokens, and no room for a weak model to ramble in whitespace.
            return {"json": self.schema, "disable_any_whitespace": True}
        if self.kind == "regex":
            return {"regex": self.regex}
        return None

    def cache_key(self) -> str:
        return json.dumps([self.kind, self.choices, self.schema, self.regex], sort_keys=True)


@dataclass
class CompletionRequest:
    prompts: list[PromptInput]
    constraint: Constraint = field(default_factory=Constraint)
    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    # One seed per prompt (so a row's output does not depend on its batch), or None.
    seeds: list[int | None] | None = None
    stop: list[str] = field(default_factory=list)
    # For choice constraints: also return a probability per choice.
    choice_logprobs: bool = False

    def seed_for(self, index: int) -> int | None:
        return self.seeds[index] if self.seeds else None


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    choice_probabilities: dict[str, float] = field(default_factory=dict)


class Backend(Protocol):
    """A teacher. ``complete`` returns one Completion per prompt, in order; it may block for a
    long time (it batches the whole request) and must be safe to call from several threads."""

    name: str

    def complete(self, request: CompletionRequest) -> list[Completion]: ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this teacher (budgets derived from the seeds)."""
        ...

    def close(self) -> None: ...


def normalize_probabilities(logprobs: dict[str, float]) -> dict[str, float]:
    """Softmax over the choices' log-probabilities (so they sum to one)."""
    import math

    if not logprobs:
        return {}
    top = max(logprobs.values())
    weights = {k: math.exp(v - top) if v > -1e30 else 0.0 for k, v in logprobs.items()}
    total = sum(weights.values()) or 1.0
    return {k: w / total for k, w in weights.items()}
