"""The teacher answers task inputs under the task's constraint: the second half of generation,
and the Label RPC (teacher baseline in evaluation, relabelling)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.budget import answers_to_fit, budget_for
from services.common.taskspec import Example, OutputError, TaskSpec
from services.generator.backend import Backend, Completion, CompletionRequest
from services.generator.method import pick_label_shots, row_seed
from services.generator.prompting import (
    label_constraint,
    label_max_tokens,
    label_stop,
    parse_label,
    render_label_prompt,
)


@dataclass
class LabelOutcome:
    completion: Completion
    output: str | None  # canonical output text, or None when the answer was unusable
    error: str = ""


def answer_text(spec: TaskSpec, output: str) -> str:
    """An answer as the teacher writes it: " label", compact JSON, or the text."""
    if spec.type == "classification":
        return " " + output
    if spec.is_structured:
        try:
            return json.dumps(json.loads(output), separators=(",", ":"), ensure_ascii=False)
        except json.JSONDecodeError:
            return output
    return output


def answer_budget(backend: Backend, spec: TaskSpec, seeds: Sequence[Example], requested: int = 0) -> int:
    """``requested`` when set; else the task type's default, raised to fit the seeds' longest
    answer (1.5× it, see services.common.budget), so long answers are not cut."""
    if requested > 0:
        return requested
    answers = answers_to_fit(spec, (s.output for s in seeds))
    return budget_for((backend.count_tokens(answer_text(spec, a)) for a in answers), label_max_tokens(spec))


def fixed_label_shots(spec: TaskSpec, seeds: list[Example], random_seed: int, count: int = 8) -> list[Example]:
    """One few-shot set for a whole job (a shared prompt prefix, reused by the prefix cache)."""
    return pick_label_shots(spec, seeds, random.Random(row_seed(random_seed, -1, "label-shots")), count)


def leave_one_out_shots(seeds: Sequence[Example], shots: list[Example], held_out: Example,
                        rng: random.Random) -> list[Example]:
    """The job's labelling shots with ``held_out`` taken out, so a seed is never its own shot.
    A shot that was that seed is replaced in its place by another seed of the same label that is
    not shown yet (every label stays represented, and the prompt stays the one generation
    labels with, one shot apart); with no such seed it is dropped."""
    shown = {s.input for s in shots}
    spare = [s for s in seeds if s.output == held_out.output and s.input != held_out.input and s.input not in shown]
    chosen: list[Example] = []
    for shot in shots:
        if shot.input != held_out.input:
            chosen.append(shot)
        elif spare:
            chosen.append(spare.pop(rng.randrange(len(spare))))
    return chosen


# Content-free inputs for contextual calibration (Zhao et al., 2021, "Calibrate before use").
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


def content_free_prior(backend: Backend, spec: TaskSpec, shots: list[Example]) -> dict[str, float]:
    """The teacher's label distribution for the labelling prompt with an empty-of-meaning input:
    its bias from the shots' order and the labels' surface forms. Averaged over a few inputs."""
    prompts = [render_label_prompt(spec, shots, text) for text in CONTENT_FREE_INPUTS]
    outs = backend.complete(CompletionRequest(prompts=prompts, constraint=label_constraint(spec), max_tokens=16,
                                              temperature=0.0, choice_logprobs=True))
    prior: dict[str, float] = {}
    for out in outs:
        for choice, p in out.choice_probabilities.items():
            prior[choice.strip()] = prior.get(choice.strip(), 0.0) + p / len(outs)
    return prior


def calibrate(probabilities: dict[str, float], prior: dict[str, float]) -> dict[str, float]:
    """p(label | x) / p(label | content-free), renormalized."""
    if not probabilities or not prior:
        return probabilities
    scores = {k: v / max(prior.get(k, 0.0), 1e-6) for k, v in probabilities.items()}
    total = sum(scores.values()) or 1.0
    return {k: v / total for k, v in scores.items()}


def label_prompts(backend: Backend, spec: TaskSpec, prompts: list[str], seeds: list[int | None],
                  temperature: float = 0.0, top_p: float = 1.0, max_tokens: int = 0,
                  prior: dict[str, float] | None = None) -> list[LabelOutcome]:
    """Label each prompt under the task's constraint. For classification with a ``prior`` (see
    ``content_free_prior``) the label is the argmax of the calibrated choice probabilities: a
    small base teacher otherwise leans hard towards one label whatever the input."""
    request = CompletionRequest(prompts=list(prompts), constraint=label_constraint(spec),
                                max_tokens=label_max_tokens(spec, max_tokens), temperature=temperature, top_p=top_p,
                                seeds=seeds, stop=label_stop(spec),
                                choice_logprobs=spec.type == "classification")
    outcomes = []
    for completion in backend.complete(request) if prompts else []:
        if completion.choice_probabilities:  # choices carry the leading space of the prompt format
            probabilities = {k.strip(): v for k, v in completion.choice_probabilities.items()}
            completion.choice_probabilities = calibrate(probabilities, prior or {})
            ranked = sorted(completion.choice_probabilities.items(), key=lambda kv: -kv[1])
            if prior and temperature == 0.0 and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
                completion.text = " " + ranked[0][0]
        if completion.finish_reason == "length":
            # Cut mid-answer: free text would still parse, and a student would learn to stop mid-sentence.
            outcomes.append(LabelOutcome(completion, None, f"the answer hit max_tokens ({request.max_tokens}) "
                                         "and was cut; raise generation.label_max_tokens"))
            continue
        try:
            outcomes.append(LabelOutcome(completion, parse_label(spec, completion.text)))
        except OutputError as exc:
            outcomes.append(LabelOutcome(completion, None, str(exc)))
    return outcomes


def label_examples(backend: Backend, spec: TaskSpec, seeds: list[Example], examples: list[Example],
                   temperature: float = 0.0, random_seed: int = 0, max_tokens: int = 0,
                   shots: int = 8, calibrated: bool = False) -> list[LabelOutcome]:
    """Answer each example's input few-shot from the seeds (an example that is also a seed is
    never shown as its own shot)."""
    fixed = fixed_label_shots(spec, seeds, random_seed, shots)
    prior = content_free_prior(backend, spec, fixed) if calibrated and spec.type == "classification" else None
    prompts = []
    for example in examples:
        chosen = [s for s in fixed if s.input != example.input] or fixed
        prompts.append(render_label_prompt(spec, chosen, example.input, example.context))
    seeds_ = [row_seed(random_seed, i, "label") for i in range(len(examples))]
    return label_prompts(backend, spec, prompts, seeds_, temperature=temperature,
                         max_tokens=answer_budget(backend, spec, seeds, max_tokens), prior=prior)


def label_seeds(backend: Backend, spec: TaskSpec, seeds: list[Example], shots: list[Example], random_seed: int,
                temperature: float = 0.0, max_tokens: int = 0, prior: dict[str, float] | None = None
                ) -> list[LabelOutcome]:
    """Each seed answered by the teacher as generation would answer a new row — the job's shots
    (``fixed_label_shots``), its prior, its constraint and budget — but with that seed taken out
    of the shots (``leave_one_out_shots``): how well the teacher labels, measured where the
    right answers are known."""
    prompts = [render_label_prompt(spec, leave_one_out_shots(
        seeds, shots, seed, random.Random(row_seed(random_seed, i, "seed-check-shots"))), seed.input, seed.context)
        for i, seed in enumerate(seeds)]
    return label_prompts(backend, spec, prompts, [row_seed(random_seed, i, "seed-check") for i in range(len(seeds))],
                         temperature=temperature, max_tokens=max_tokens, prior=prior)
