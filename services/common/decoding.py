"""ONNX Runtime decoding of an exported student, shared by the serving service (which serves it)
and the evaluator (which scores ONNX candidates with exactly the loop that is served): the decode
loop, constrained decoding (label trie, JSON stop) and the student's end-of-turn tokens.

Why a hand loop: optimum's ``generate()`` re-wraps every step in torch tensors and re-allocates
the past; here the present key/values that ONNX Runtime returns (``OrtValue``s, never copied into
numpy) are bound straight back as the next step's past through IO binding, so a step costs one
session run and one argmax. Prompts of a batch are left-padded so the new tokens of every row sit
in the same column.

Constraints (on by default, switched off per request with ``constrained=False``):
- classification scores only the label token sequences (each label + end-of-turn) and never
  generates: one forward pass when the labels' first tokens differ, one more otherwise;
- extraction / tool calling stop as soon as the answer holds a complete JSON value.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.common import envs
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.student_format import parse_answer, render_prompt
from services.common.taskspec import TaskSpec

DEFAULT_MAX_TOKENS = 256
# Limits that turn an oversized request into INVALID_ARGUMENT instead of an out-of-memory.
MAX_TOKENS_LIMIT = envs.SERVING_MAX_TOKENS.get()
MAX_INPUT_TOKENS = envs.SERVING_MAX_INPUT_TOKENS.get()
MAX_BATCH_INPUTS = envs.SERVING_MAX_INPUTS.get()
_END_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "</s>")
_JSON_START = re.compile(r"[\[{]")


@dataclass
class Prediction:
    """One answer. ``output`` is already cleaned with ``student_format.parse_answer``."""

    output: str
    label_probabilities: dict[str, float] = field(default_factory=dict)
    completion_tokens: int = 0
    raw: str = ""
    finish_reason: str = "stop"  # "stop" | "length"
    prompt_tokens: int = 0


def batch_contexts(inputs: Sequence[str], contexts: Sequence[str] | None) -> list[str]:
    """One context per input ("" when none were given); refuses an oversized batch or a context
    count that does not match the inputs."""
    if len(inputs) > MAX_BATCH_INPUTS:
        raise InvalidArgument(f"{len(inputs)} inputs in one request; the limit is {MAX_BATCH_INPUTS}")
    given = list(contexts or [])
    if given and len(given) != len(inputs):
        raise InvalidArgument(f"{len(given)} contexts for {len(inputs)} inputs; give one per input or none")
    return given or [""] * len(inputs)


def json_complete(text: str) -> bool:
    """Whether ``text`` already holds one complete JSON value (an object or a list)."""
    match = _JSON_START.search(text)
    if not match:
        return False
    try:
        json.JSONDecoder().raw_decode(text[match.start():])
        return True
    except json.JSONDecodeError:
        return False


class LabelTrie:
    """The label token sequences (label + end-of-turn) as a prefix tree: at a node with one child
    the constraint leaves no choice, so only branching nodes need logits."""

    def __init__(self, labels: list[str], sequences: list[list[int]]) -> None:
        if not labels:
            raise InvalidArgument("a classification task needs labels")
        self.labels = labels
        self.sequences = sequences
        self.children: dict[tuple[int, ...], set[int]] = {}
        for seq in sequences:
            for j in range(len(seq)):
                self.children.setdefault(tuple(seq[:j]), set()).add(seq[j])
        if len({tuple(s) for s in sequences}) != len(sequences):
            raise InvalidArgument("two labels tokenize to the same sequence; labels must differ")

    @property
    def one_step(self) -> bool:
        """True when the labels' first tokens all differ: one forward pass decides."""
        return len(self.children[()]) == len(self.sequences)

    def probabilities(self, step_logits: list[np.ndarray]) -> dict[str, float]:
        """``step_logits[i][j]`` are the logits that predict token j of label i (shape [len_i, V],
        rows past the first branching-free point may be absent). Returns P(label) under the
        constraint: the product of softmaxes restricted to the allowed children of each node."""
        scores = []
        for i, seq in enumerate(self.sequences):
            logp = 0.0
            for j in range(len(seq)):
                allowed = sorted(self.children[tuple(seq[:j])])
                if len(allowed) == 1:
                    continue
                row = step_logits[i][j][allowed].astype(np.float64)
                row = row - row.max()
                logp += float(row[allowed.index(seq[j])] - np.log(np.exp(row).sum()))
            scores.append(logp)
        probs = np.exp(np.array(scores) - max(scores))
        probs = probs / probs.sum()
        return {label: float(p) for label, p in zip(self.labels, probs)}


def eos_token_ids(tokenizer: Any, model_dir: Path | None = None) -> set[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    for marker in _END_MARKERS:
        if marker in vocab:
            ids.add(int(vocab[marker]))
    if model_dir is not None and (model_dir / "generation_config.json").exists():
        eos = json.loads((model_dir / "generation_config.json").read_text()).get("eos_token_id")
        for value in (eos if isinstance(eos, list) else [eos]):
            if isinstance(value, int):
                ids.add(value)
    return ids


def label_sequences(tokenizer: Any, labels: list[str]) -> list[list[int]]:
    """How each label is written by the student: its tokens then the end-of-turn token, exactly as
    the trainer's target ``output + eos`` tokenizes after the prompt's trailing newline."""
    eos = tokenizer.eos_token_id
    return [list(tokenizer.encode(label, add_special_tokens=False)) + ([eos] if eos is not None else [])
            for label in labels]


def intra_op_threads() -> int:
    """DISTILLERY_SERVING_THREADS (0: ONNX Runtime's default, one per core)."""
    return max(0, envs.SERVING_THREADS.get())


class OnnxGenerator:
    """An exported student (optimum ``text-generation-with-past`` layout: one ``model.onnx`` with
    ``past_key_values.N.key/value`` inputs and ``present.N.*`` outputs) plus its tokenizer.

    Thread-safe: ONNX Runtime sessions may be run from several threads at once."""

    def __init__(self, model_dir: Path | str, spec: TaskSpec, threads: int | None = None,
                 onnx_file: str = "model.onnx") -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        path = self.model_dir / onnx_file
        if not path.exists():
            raise NotFound(f"{path}: no ONNX model there (expected an optimum text-generation-with-past export)")
        self.spec = spec
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self._tokenizer_lock = threading.Lock()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads() if threads is None else threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names = sorted((n for n in inputs if n.startswith("past_key_values.")),
                                 key=lambda n: (int(n.split(".")[1]), n.split(".")[2] != "key"))
        if not self.past_names:
            raise FailedPrecondition(f"{path}: exported without KV cache; export with text-generation-with-past")
        shape = inputs[self.past_names[0]].shape
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self.kv_dtype = np.float16 if "float16" in inputs[self.past_names[0]].type else np.float32
        self.has_position_ids = "position_ids" in inputs
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.eos_ids = eos_token_ids(self.tokenizer, self.model_dir)
        self.pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                          else min(self.eos_ids))
        self.trie = (LabelTrie(list(spec.labels), label_sequences(self.tokenizer, list(spec.labels)))
                     if spec.type == "classification" else None)
        self._ort = ort

    @classmethod
    def from_dir(cls, path: Path | str, task_spec: TaskSpec, threads: int | None = None) -> OnnxGenerator:
        """Open an exported directory (``model.onnx`` + tokenizer), or a bundle (its ``onnx/``)."""
        path = Path(path)
        if not (path / "model.onnx").exists() and (path / "onnx" / "model.onnx").exists():
            path = path / "onnx"
        return cls(path, task_spec, threads)

    # ---- prompts -------------------------------------------------------------------------------

    def encode_prompt(self, text: str, context: str = "") -> list[int]:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument("input is empty")
        prompt = render_prompt(self.tokenizer, self.spec, text, context)
        with self._tokenizer_lock:  # a fast tokenizer may reconfigure itself per call ("Already borrowed")
            ids = list(self.tokenizer.encode(prompt, add_special_tokens=False))
        if len(ids) > MAX_INPUT_TOKENS:
            raise InvalidArgument(f"input is {len(ids)} tokens long with the prompt; the limit is {MAX_INPUT_TOKENS}")
        return ids

    def _check_max_tokens(self, max_tokens: int | None) -> int:
        if max_tokens is None or max_tokens == 0:
            return DEFAULT_MAX_TOKENS
        if max_tokens < 0 or max_tokens > MAX_TOKENS_LIMIT:
            raise InvalidArgument(f"max_tokens={max_tokens} is out of range 1..{MAX_TOKENS_LIMIT}")
        return int(max_tokens)

    # ---- one session run -------------------------------------------------------------------------

    def _empty_past(self, batch: int) -> list[Any]:
        empty = np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=self.kv_dtype)
        value = self._ort.OrtValue.ortvalue_from_numpy(empty)
        return [value] * len(self.past_names)

    def _step(self, input_ids: np.ndarray, attention_mask: np.ndarray, past: list[Any],
              last_only: bool = True) -> tuple[np.ndarray, list[Any]]:
        """Run the model once; returns logits (last position, or all) and the presents as OrtValues,
        which are bound back unchanged as the next past (no copy into numpy)."""
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(input_ids, dtype=np.int64))
        binding.bind_cpu_input("attention_mask", np.ascontiguousarray(attention_mask, dtype=np.int64))
        if self.has_position_ids:
            positions = np.cumsum(attention_mask, axis=1) - 1
            positions = np.clip(positions[:, -input_ids.shape[1]:], 0, None)
            binding.bind_cpu_input("position_ids", np.ascontiguousarray(positions, dtype=np.int64))
        for name, value in zip(self.past_names, past):
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        logits = outputs[0].numpy()
        return (logits[:, -1, :] if last_only else logits), list(outputs[1:])

    def forward_full(self, ids: list[int]) -> np.ndarray:
        """Logits for every position of one sequence (no past): used by the parity check."""
        array = np.array([ids], dtype=np.int64)
        logits, _ = self._step(array, np.ones_like(array), self._empty_past(1), last_only=False)
        return logits[0]

    def _prefill(self, prompts: list[list[int]]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        width = max(len(p) for p in prompts)
        ids = np.full((len(prompts), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(prompts), width), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = prompt
            mask[row, width - len(prompt):] = 1
        logits, past = self._step(ids, mask, self._empty_past(len(prompts)))
        return logits, mask, past

    # ---- generation ------------------------------------------------------------------------------

    def generate_ids(self, prompts: list[list[int]], max_tokens: list[int], stop_at_json: bool = False,
                     on_token: Any = None) -> tuple[list[list[int]], list[str]]:
        """Greedy decoding of a batch. Returns the new token ids of each row (without the end
        token) and each row's finish reason."""
        batch = len(prompts)
        logits, mask, past = self._prefill(prompts)
        outputs: list[list[int]] = [[] for _ in range(batch)]
        reasons = ["length"] * batch
        done = [False] * batch
        for row in range(batch):
            if max_tokens[row] <= 0:
                done[row] = True
        while not all(done):
            next_ids = logits.argmax(axis=-1)
            for row in range(batch):
                if done[row]:
                    continue
                token = int(next_ids[row])
                if token in self.eos_ids:
                    done[row], reasons[row] = True, "stop"
                    continue
                outputs[row].append(token)
                if on_token is not None:
                    on_token(row, outputs[row])
                if stop_at_json and json_complete(self.tokenizer.decode(outputs[row], skip_special_tokens=True)):
                    done[row], reasons[row] = True, "stop"
                elif len(outputs[row]) >= max_tokens[row]:
                    done[row] = True
            if all(done):
                break
            feed = np.array([[outputs[r][-1] if outputs[r] and not done[r] else self.pad_id] for r in range(batch)],
                            dtype=np.int64)
            mask = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
            logits, past = self._step(feed, mask, past)
        return outputs, reasons

    def classify(self, prompts: list[list[int]]) -> list[dict[str, float]]:
        """Label probabilities under the label constraint, for a batch of prompts."""
        assert self.trie is not None
        logits, mask, past = self._prefill(prompts)
        results = []
        if self.trie.one_step:
            for row in range(len(prompts)):
                step = [np.stack([logits[row]]) for _ in self.trie.sequences]
                results.append(self.trie.probabilities(step))
            return results
        # Labels share a first token: score every label continuation in one extra run per row,
        # with the prompt's past repeated once per label.
        seqs = self.trie.sequences
        width = max(len(s) for s in seqs)
        cand = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        for i, seq in enumerate(seqs):
            cand[i, :len(seq)] = seq
        presents = [value.numpy() for value in past]
        for row in range(len(prompts)):
            row_past = [self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(
                np.repeat(p[row:row + 1], len(seqs), axis=0))) for p in presents]
            row_mask = np.concatenate([np.repeat(mask[row:row + 1], len(seqs), axis=0),
                                       np.ones((len(seqs), width), dtype=np.int64)], axis=1)
            cand_logits, _ = self._step(cand, row_mask, row_past, last_only=False)
            step = [np.concatenate([logits[row:row + 1], cand_logits[i, :len(seq) - 1]], axis=0)
                    for i, seq in enumerate(seqs)]
            results.append(self.trie.probabilities(step))
        return results

    def predict(self, inputs: Sequence[str], contexts: Sequence[str] | None = None,
                max_tokens: int | Sequence[int] | None = None, constrained: bool = True) -> list[Prediction]:
        """One ``Prediction`` per input (a batch runs as one padded batch)."""
        if not inputs:
            return []
        contexts = batch_contexts(inputs, contexts)
        prompts = [self.encode_prompt(text, ctx) for text, ctx in zip(inputs, contexts)]
        limits = ([self._check_max_tokens(m) for m in max_tokens] if isinstance(max_tokens, (list, tuple))
                  else [self._check_max_tokens(max_tokens)] * len(inputs))
        if constrained and self.trie is not None:
            out = []
            for probs in self.classify(prompts):
                label = max(probs, key=probs.get)
                steps = len(self.trie.sequences[self.trie.labels.index(label)])
                out.append(Prediction(output=label, label_probabilities=probs, completion_tokens=steps, raw=label))
            for prediction, prompt in zip(out, prompts):
                prediction.prompt_tokens = len(prompt)
            return out
        ids, reasons = self.generate_ids(prompts, limits, stop_at_json=constrained and self.spec.is_structured)
        out = []
        for tokens, reason, prompt in zip(ids, reasons, prompts):
            raw = self.tokenizer.decode(tokens, skip_special_tokens=True)
            out.append(Prediction(output=parse_answer(self.spec, raw), completion_tokens=len(tokens), raw=raw,
                                  finish_reason=reason, prompt_tokens=len(prompt)))
        return out

    def stream(self, text: str, context: str = "", max_tokens: int | None = None,
               constrained: bool = True) -> Iterator[str]:
        """Text deltas of one answer. Classification (constrained) yields the label at once."""
        if constrained and self.trie is not None:
            yield self.predict([text], [context])[0].output
            return
        prompt = self.encode_prompt(text, context)
        limit = self._check_max_tokens(max_tokens)
        queue: list[str] = []
        shown = [""]

        def on_token(_row: int, tokens: list[int]) -> None:
            decoded = self.tokenizer.decode(tokens, skip_special_tokens=True)
            if decoded.endswith("\ufffd"):
                return  # half of a multi-byte character: wait for the rest
            if len(decoded) > len(shown[0]):
                queue.append(decoded[len(shown[0]):])
                shown[0] = decoded

        # Decode step by step in this thread so deltas leave as soon as they exist.
        yield from self._stream_steps(prompt, limit, constrained and self.spec.is_structured, on_token, queue)

    def _stream_steps(self, prompt: list[int], limit: int, stop_at_json: bool, on_token: Any,
                      queue: list[str]) -> Iterator[str]:
        logits, mask, past = self._prefill([prompt])
        tokens: list[int] = []
        while len(tokens) < limit:
            token = int(logits[0].argmax())
            if token in self.eos_ids:
                break
            tokens.append(token)
            on_token(0, tokens)
            while queue:
                yield queue.pop(0)
            if stop_at_json and json_complete(self.tokenizer.decode(tokens, skip_special_tokens=True)):
                break
            mask = np.concatenate([mask, np.ones((1, 1), dtype=np.int64)], axis=1)
            logits, past = self._step(np.array([[token]], dtype=np.int64), mask, past)
        while queue:
            yield queue.pop(0)
