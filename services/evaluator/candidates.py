"""The things the evaluator scores. Each candidate loads once and then answers test examples,
timing every call, so quality and cost come out of the same run.

- ``TeacherCandidate``: the generator's ``Label`` RPC (the teacher's own task prompt and decoding
  constraint, exactly as in generation).
- ``HFStudentCandidate``: a transformers checkpoint (or a PEFT adapter on its base), the student
  prompt of ``services.common.student_format``, greedy decoding.
- ``OnnxStudentCandidate``: an ONNX export, run by the serving service's ONNX Runtime loop.

For classification both students are *constrained* by default: instead of generating, they score
each label's token sequence (label + end-of-turn) and answer the most likely one — the same rule
serving applies, so a student's evaluation predicts its served behaviour. ``constrained: false``
in the evaluation config switches to free generation (then invalid labels become possible and are
counted as malformed)."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common import envs
from services.common.budget import answers_to_fit, budget_for
from services.common.enums import ModelFormat
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.references import Kind, ModelReferences
from services.common.settings import build_settings
from services.common.student_format import parse_answer, render_prompt
from services.common.taskspec import Example, TaskSpec

log = logging.getLogger(__name__)

TEACHER, STUDENT, ONNX = "teacher", "student", "onnx"
DEFAULT_MAX_NEW_TOKENS = 256


@dataclass
class Prediction:
    """One answer: ``text`` is cleaned (``parse_answer``), ``raw`` what the model produced."""

    text: str
    latency_s: float
    completion_tokens: int = 0
    raw: str = ""
    label_probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class CandidateSpec:
    """A candidate as the request names it (plain twin of the ``Candidate`` message)."""

    name: str
    kind: str                      # TEACHER | STUDENT | ONNX
    model_uri: str = ""
    model_format: str = ""         # a ModelFormat name, or "" (from the files)
    model_base: str = ""
    endpoint: str = ""


@dataclass
class EvalOptions:
    """The ``config`` struct of StartEvaluation (all optional)."""

    max_examples: int = 0            # 0: the whole test set
    # 0: fit to the seeds' answers in each model's own tokens (services.common.budget), never
    # below 16 for classification and 256 otherwise; the teacher's is fit by the generator.
    max_new_tokens: int = 0
    constrained: bool = True         # label scoring for classification, stop at a complete JSON value
    teacher_batch_size: int = 8      # examples per Label call (latency is amortized over the batch)
    # Examples a transformers student generates at once (left-padded, latency amortized over the
    # batch). 0: 8 on a GPU, 1 on the CPU, where the table's student latency is per request.
    student_batch_size: int = 0
    # Seconds one Label call to the teacher may take.
    teacher_timeout_s: float = 900.0
    judge: bool = False              # LLM judge for QA through the generator's Complete RPC
    trained_students: list[str] = field(default_factory=list)  # names for the student/teacher ratio
    listed_malformed: int = 20       # malformed predictions listed per candidate in report.md
    # Paired bootstrap of the differences between candidates (services.evaluator.bootstrap): the
    # resamples per interval.
    bootstrap_resamples: int = 2000
    # The bootstrap's random seed (fixed, so a report is reproducible).
    bootstrap_seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EvalOptions:
        """From StartEvaluation's ``config`` (services.common.settings: typed, unknown keys refused)."""
        return build_settings(cls, data, where="evaluation")

    def validate(self) -> None:
        for name in ("max_examples", "max_new_tokens", "student_batch_size"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"evaluation.{name} must be >= 0, got {getattr(self, name)}")
        if self.teacher_batch_size < 1:
            raise InvalidArgument(f"evaluation.teacher_batch_size must be >= 1, got {self.teacher_batch_size}")
        if self.teacher_timeout_s <= 0:
            raise InvalidArgument(f"evaluation.teacher_timeout_s must be > 0, got {self.teacher_timeout_s}")
        if self.bootstrap_resamples < 100:
            raise InvalidArgument("evaluation.bootstrap_resamples must be >= 100 (a 95% interval from fewer is "
                                  "mostly noise)")

    def new_tokens(self, spec: TaskSpec, answer_tokens: Sequence[int] = ()) -> int:
        """``max_new_tokens`` when set, else the type's default raised to fit the longest answer."""
        default = 16 if spec.type == "classification" else DEFAULT_MAX_NEW_TOKENS
        return self.max_new_tokens or budget_for(answer_tokens, default)


class Candidate(ABC):
    """Load once, then ``predict`` batches of examples (one Prediction per example, in order)."""

    batch_size = 1
    constrained_note = ""

    def __init__(self, spec: CandidateSpec, task: TaskSpec, options: EvalOptions) -> None:
        self.spec = spec
        self.task = task
        self.options = options
        # Answers the budget is fit to (every label, or the seeds' outputs); set by build_candidate.
        self.answers: list[str] = []

    def answer_budget(self, tokenizer: Any) -> int:
        """``new_tokens`` for this model: the answers counted in its own tokens."""
        return self.options.new_tokens(self.task, [len(tokenizer.encode(a, add_special_tokens=False))
                                                   for a in self.answers])

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def predict(self, examples: list[Example]) -> list[Prediction]: ...

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """What the report says about how this candidate answered."""
        return {"kind": self.spec.kind, "model": self.spec.model_uri or self.spec.endpoint,
                "decoding": self.constrained_note or "greedy"}


# ----- models ---------------------------------------------------------------------------------
# ``(reference, field name for errors, kind)`` → a local directory: ModelReferences.resolve, which
# confines paths to the store, the model cache and DISTILLERY_MODEL_ROOTS and refuses pickles.
ModelResolver = Callable[[str, str, Kind], Path]


def model_resolver(references: ModelReferences) -> ModelResolver:
    return references.resolve


def _torch_threads() -> int:
    """DISTILLERY_EVALUATOR_THREADS: torch intra-op threads for student candidates (0: torch's
    default). On a small shared CPU one thread is often several times faster than two that
    fight other processes for the cores."""
    return max(0, envs.EVALUATOR_THREADS.get())


def _on_gpu(device: str) -> bool:
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return device.startswith("cuda")


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


class HFStudentCandidate(Candidate):
    """A transformers checkpoint on CPU (or CUDA when present), one example at a time so latency
    is per example, as a served student sees it."""

    def __init__(self, spec: CandidateSpec, task: TaskSpec, options: EvalOptions, resolve: ModelResolver,
                 device: str = "auto") -> None:
        super().__init__(spec, task, options)
        self._resolve = resolve
        self._device_pref = device
        self.model: Any = None
        self.tokenizer: Any = None
        self.trie: Any = None
        self.max_new_tokens = 0  # set by load(): fit to the answers in this tokenizer's tokens
        self._threads_before = 0
        if task.type == "classification" and options.constrained:
            self.constrained_note = "constrained: most likely label (label token log-likelihood)"
        elif task.is_structured and options.constrained:
            self.constrained_note = "greedy, stops at the first complete JSON value"
        if not (task.type == "classification" and options.constrained):
            # Label scoring is one forward pass per example; generation gains from batches.
            self.batch_size = options.student_batch_size or (8 if _on_gpu(device) else 1)
            if self.batch_size > 1:
                self.constrained_note = (self.constrained_note or "greedy") + \
                    f"; batches of {self.batch_size}, latency amortized over the batch"

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from services.common.decoding import LabelTrie, eos_token_ids, label_sequences

        threads = _torch_threads()
        if threads:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(threads)
        path = self._resolve(self.spec.model_uri, f"candidate {self.name}: model.uri", "directory")
        is_adapter = self.spec.model_format == ModelFormat.PEFT_ADAPTER or (path / "adapter_config.json").exists()
        base_path = (self._resolve(self.spec.model_base, f"candidate {self.name}: model.base", "checkpoint")
                     if is_adapter and self.spec.model_base else path)
        if is_adapter and base_path == path:
            raise InvalidArgument(f"candidate {self.name}: {path} is a LoRA adapter; set candidate.model.base")
        if not list(base_path.glob("*.safetensors")):
            raise FailedPrecondition(f"candidate {self.name}: {base_path} holds no safetensors weights")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if self._device_pref == "auto" \
            else self._device_pref
        tokenizer_dir = path if (path / "tokenizer_config.json").exists() else base_path
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=dtype)
        if is_adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
        self.model = model.to(self.device).eval()
        self.max_new_tokens = self.answer_budget(self.tokenizer)
        self.eos_ids = sorted(eos_token_ids(self.tokenizer, base_path))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        if self.task.type == "classification" and self.options.constrained:
            self.trie = LabelTrie(list(self.task.labels), label_sequences(self.tokenizer, list(self.task.labels)))

    def _prompt_tokens(self, example: Example) -> list[int]:
        """The student's chat-formatted prompt, exactly as training formatted it."""
        prompt = render_prompt(self.tokenizer, self.task, example.input, example.context)
        return self.tokenizer.encode(prompt, add_special_tokens=False)

    def _prompt_ids(self, example: Example) -> Any:
        import torch

        return torch.tensor([self._prompt_tokens(example)], device=self.device)

    def _classify(self, example: Example) -> Prediction:
        import torch

        start = time.perf_counter()
        ids = self._prompt_ids(example)
        with torch.inference_mode():
            out = self.model(input_ids=ids, use_cache=not self.trie.one_step)
            last = out.logits[0, -1].float().cpu().numpy()
            if self.trie.one_step:
                steps = [last[None, :] for _ in self.trie.sequences]
            else:  # labels share a first token: score every continuation on the prompt's cache
                seqs = self.trie.sequences
                width = max(len(s) for s in seqs)
                cand = torch.full((len(seqs), width), self.pad_id, dtype=torch.long, device=self.device)
                for i, seq in enumerate(seqs):
                    cand[i, :len(seq)] = torch.tensor(seq)
                cache = out.past_key_values
                cache.batch_repeat_interleave(len(seqs))
                mask = torch.ones((len(seqs), ids.shape[1] + width), dtype=torch.long, device=self.device)
                logits = self.model(input_ids=cand, attention_mask=mask, past_key_values=cache).logits.float().cpu().numpy()
                import numpy as np

                steps = [np.concatenate([last[None, :], logits[i, :len(seq) - 1]], axis=0) for i, seq in enumerate(seqs)]
        probs = self.trie.probabilities(steps)
        label = max(probs, key=probs.get)
        tokens = len(self.trie.sequences[self.trie.labels.index(label)])
        return Prediction(label, time.perf_counter() - start, tokens, label, probs)

    def _generate(self, examples: list[Example]) -> list[Prediction]:
        """Greedy answers for a batch: prompts left-padded to one length, each row stopping at its
        end-of-turn token or, for JSON tasks, at its first complete JSON value."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        from services.common.decoding import json_complete

        tokenizer = self.tokenizer
        start = time.perf_counter()
        prompts = [self._prompt_tokens(e) for e in examples]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)

        class _StopAtJson(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.tensor([json_complete(tokenizer.decode(row[width:], skip_special_tokens=True))
                                     for row in input_ids], device=input_ids.device)

        stopping = StoppingCriteriaList([_StopAtJson()]) if self.task.is_structured and self.options.constrained else None
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=mask, do_sample=False,
                                      max_new_tokens=self.max_new_tokens, eos_token_id=self.eos_ids,
                                      pad_token_id=self.pad_id, stopping_criteria=stopping)
        seconds = (time.perf_counter() - start) / len(examples)
        predictions = []
        for row in out[:, width:].tolist():
            # A row that finished early is filled with padding up to the longest row.
            while row and (row[-1] in self.eos_ids or row[-1] == self.pad_id):
                row.pop()
            raw = tokenizer.decode(row, skip_special_tokens=True)
            predictions.append(Prediction(parse_answer(self.task, raw), seconds, len(row), raw))
        return predictions

    def predict(self, examples: list[Example]) -> list[Prediction]:
        if self.model is None:
            raise FailedPrecondition(f"candidate {self.name} is not loaded")
        if self.trie is not None:
            return [self._classify(example) for example in examples]
        return self._generate(examples)

    def close(self) -> None:
        self.model = None
        if self._threads_before:
            import torch

            torch.set_num_threads(self._threads_before)
            self._threads_before = 0


class OnnxStudentCandidate(Candidate):
    """An ONNX export run with the serving service's ONNX Runtime decode loop."""

    def __init__(self, spec: CandidateSpec, task: TaskSpec, options: EvalOptions, resolve: ModelResolver) -> None:
        super().__init__(spec, task, options)
        self._resolve = resolve
        self.generator: Any = None
        self.max_new_tokens = 0  # set by load()
        if task.type == "classification" and options.constrained:
            self.constrained_note = "constrained: most likely label (label token log-likelihood)"
        elif task.is_structured and options.constrained:
            self.constrained_note = "greedy, stops at the first complete JSON value"

    def load(self) -> None:
        try:
            from services.common.decoding import OnnxGenerator
        except ImportError:
            raise FailedPrecondition("ONNX runtime not available in this build") from None
        path = self._resolve(self.spec.model_uri, f"candidate {self.name}: model.uri", "directory")
        self.generator = OnnxGenerator.from_dir(path, self.task)
        self.max_new_tokens = self.answer_budget(self.generator.tokenizer)

    def predict(self, examples: list[Example]) -> list[Prediction]:
        if self.generator is None:
            raise FailedPrecondition(f"candidate {self.name} is not loaded")
        results = []
        for example in examples:
            (pred,), seconds = _timed(lambda example=example: self.generator.predict(
                [example.input], [example.context], max_tokens=self.max_new_tokens,
                constrained=self.options.constrained))
            results.append(Prediction(pred.output, seconds, pred.completion_tokens, pred.raw,
                                      dict(pred.label_probabilities)))
        return results

    def close(self) -> None:
        self.generator = None


class TeacherCandidate(Candidate):
    """The teacher through the generator's Label RPC, in batches (the generator batches them on
    its engine; per-example latency is the batch's wall time divided by its size)."""

    def __init__(self, spec: CandidateSpec, task: TaskSpec, options: EvalOptions, client_factory: Callable[[str], Any],
                 default_endpoint: str, seeds: Any = None) -> None:
        super().__init__(spec, task, options)
        self.batch_size = options.teacher_batch_size
        self.endpoint = spec.endpoint or default_endpoint
        self._client_factory = client_factory
        self._seeds = seeds
        self.client: Any = None
        self.constrained_note = (f"generator Label RPC, batches of {self.batch_size} "
                                 "(latency amortized over the batch)")

    def load(self) -> None:
        if not self.endpoint:
            raise FailedPrecondition(f"candidate {self.name}: no generator endpoint configured")
        self.client = self._client_factory(self.endpoint)

    def predict(self, examples: list[Example]) -> list[Prediction]:
        if self.client is None:
            raise FailedPrecondition(f"candidate {self.name} is not loaded")
        completions, seconds = _timed(lambda: self.client.label(
            # 0 unless configured: the generator fits the budget to the seeds in the teacher's tokens.
            self.task, self._seeds, examples, max_tokens=self.options.max_new_tokens,
            timeout=self.options.teacher_timeout_s))
        if len(completions) != len(examples):
            raise FailedPrecondition(f"generator answered {len(completions)} of {len(examples)} examples")
        share = seconds / max(1, len(examples))
        return [Prediction(parse_answer(self.task, c.text), share, int(c.completion_tokens), c.text,
                           dict(c.choice_probabilities)) for c in completions]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.endpoint}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None


def build_candidate(spec: CandidateSpec, task: TaskSpec, options: EvalOptions, *, resolve: ModelResolver,
                    client_factory: Callable[[str], Any], generator_endpoint: str, seeds: Any = None,
                    device: str = "auto", seed_outputs: Sequence[str] = ()) -> Candidate:
    """``seed_outputs``: the seeds' answers, which the students' decode budget is fit to."""
    candidate: Candidate
    if spec.kind == TEACHER:
        candidate = TeacherCandidate(spec, task, options, client_factory, generator_endpoint, seeds)
    elif spec.kind == ONNX or spec.model_format == ModelFormat.ONNX:
        candidate = OnnxStudentCandidate(spec, task, options, resolve)
    elif spec.kind == STUDENT:
        candidate = HFStudentCandidate(spec, task, options, resolve, device)
    else:
        raise NotFound(f"candidate {spec.name}: unknown kind {spec.kind!r}")
    candidate.answers = answers_to_fit(task, seed_outputs)
    return candidate
