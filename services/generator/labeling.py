"""The teacher answers task inputs under the task's constraint: the second half of generation,
and the Label RPC (teacher baseline in evaluation, relabelling)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from services.common.taskspec import Example, OutputError, TaskSpec
from services.generator.backend import Backend, Completion, CompletionRequest
from services.generator.method import pick_label_shots, row_seed
from services.generator.prompting import (label_constraint, label_max_tokens, label_stop, parse_label,
                                          render_label_prompt)


@dataclass
class LabelOutcome:
    completion: Completion
    output: str | None  # canonical output text, or None when the answer was unusable
    error: str = ""


def fixed_label_shots(spec: TaskSpec, seeds: list[Example], random_seed: int, count: int = 8) -> list[Example]:
    """One few-shot set for a whole job (a shared prompt prefix, reused by the prefix cache)."""
    return pick_label_shots(spec, seeds, random.Random(row_seed(random_seed, -1, "label-shots")), count)


def label_prompts(backend: Backend, spec: TaskSpec, prompts: list[str], seeds: list[int | None],
                  temperature: float = 0.0, top_p: float = 1.0, max_tokens: int = 0) -> list[LabelOutcome]:
    request = CompletionRequest(prompts=list(prompts), constraint=label_constraint(spec),
                                max_tokens=label_max_tokens(spec, max_tokens), temperature=temperature, top_p=top_p,
                                seeds=seeds, stop=label_stop(spec),
                                choice_logprobs=spec.type == "classification")
    outcomes = []
    for completion in backend.complete(request) if prompts else []:
        if completion.choice_probabilities:  # choices carry the leading space of the prompt format
            completion.choice_probabilities = {k.strip(): v for k, v in completion.choice_probabilities.items()}
        try:
            outcomes.append(LabelOutcome(completion, parse_label(spec, completion.text)))
        except OutputError as exc:
            reason = str(exc)
            if completion.finish_reason == "length":
                reason += " (the answer hit max_tokens)"
            outcomes.append(LabelOutcome(completion, None, reason))
    return outcomes


def label_examples(backend: Backend, spec: TaskSpec, seeds: list[Example], examples: list[Example],
                   temperature: float = 0.0, random_seed: int = 0, max_tokens: int = 0,
                   shots: int = 8) -> list[LabelOutcome]:
    """Answer each example's input few-shot from the seeds (an example that is also a seed is
    never shown as its own shot)."""
    fixed = fixed_label_shots(spec, seeds, random_seed, shots)
    prompts = []
    for example in examples:
        chosen = [s for s in fixed if s.input != example.input] or fixed
        prompts.append(render_label_prompt(spec, chosen, example.input, example.context))
    seeds_ = [row_seed(random_seed, i, "label") for i in range(len(examples))]
    return label_prompts(backend, spec, prompts, seeds_, temperature=temperature, max_tokens=max_tokens)
