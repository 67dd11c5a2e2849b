"""Training examples → token ids with answer-only labels → batches that waste little on padding.

The prompt is rendered by services.common.student_format.render_prompt, the exact text serving
sends, and tokenized on its own; the answer (output + eos) is tokenized separately and appended.
That is what the model sees at serving time too (prompt tokens, then the tokens it generates), so
train and serve cannot disagree at the prompt/answer boundary. Only answer tokens carry a label.

Batch plans are pure functions of (lengths, seed, epoch): a resumed run rebuilds the same plan and
skips the micro-batches it had already done."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from services.common.errors import InvalidArgument
from services.common.jsonl import iter_jsonl
from services.common.student_format import answer_suffix, render_prompt
from services.common.taskspec import Example, TaskSpec

IGNORE = -100
# Length grouping sorts inside windows of this many batches, so batches stay random across the
# epoch while examples of similar length meet inside one (HF's LengthGroupedSampler idea).
GROUP_WINDOW_BATCHES = 50


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    # How much this row's token losses count (soft-label rows carry the teacher's probability).
    weight: float = 1.0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass
class EncodeStats:
    examples: int = 0
    truncated: int = 0
    skipped_too_long: int = 0
    tokens: int = 0
    answer_tokens: int = 0
    skipped_ids: list[str] = field(default_factory=list)


def load_examples(path: Path, allow_empty: bool = False) -> list[Example]:
    """accepted.jsonl → Examples; a malformed line is an error that names it. An empty file is an
    error unless ``allow_empty`` (the seeds are in the mix: they alone can train a student)."""
    examples: list[Example] = []
    for item in iter_jsonl(path):
        if item.error is not None:
            raise InvalidArgument(f"{path.name}:{item.line}: {item.error}")
        row = item.value
        if not isinstance(row, dict):
            raise InvalidArgument(f"{path.name}:{item.line}: expected a JSON object, got {type(row).__name__}")
        for key in ("input", "output"):
            if key not in row:
                raise InvalidArgument(f"{path.name}:{item.line}: missing field {key!r}")
        output = row["output"]
        if not isinstance(output, str):  # structured outputs may arrive as JSON values
            import json

            output = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
        examples.append(Example.from_dict({**row, "output": output}))
    if not examples and not allow_empty:
        raise InvalidArgument(f"{path.name}: no training examples")
    return examples


def encode_example(tokenizer: Any, spec: TaskSpec, example: Example, max_seq_len: int) -> tuple[Encoded | None, bool]:
    """(encoded, truncated). None when not even the prompt plus one answer token fits."""
    prompt = render_prompt(tokenizer, spec, example.input, example.context)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(example.output + answer_suffix(tokenizer), add_special_tokens=False)["input_ids"]
    if len(prompt_ids) + 1 > max_seq_len:
        return None, False
    truncated = len(prompt_ids) + len(answer_ids) > max_seq_len
    answer_ids = answer_ids[: max_seq_len - len(prompt_ids)]
    return Encoded(list(prompt_ids) + list(answer_ids), [IGNORE] * len(prompt_ids) + list(answer_ids)), truncated


def encode_all(tokenizer: Any, spec: TaskSpec, examples: Sequence[Example], max_seq_len: int,
               weights: Sequence[float] | None = None) -> tuple[list[Encoded], EncodeStats]:
    stats = EncodeStats()
    encoded: list[Encoded] = []
    for number, example in enumerate(examples):
        item, truncated = encode_example(tokenizer, spec, example, max_seq_len)
        if item is not None and weights is not None:
            item.weight = float(weights[number])
        if item is None:
            stats.skipped_too_long += 1
            stats.skipped_ids.append(example.id)
            continue
        stats.truncated += int(truncated)
        stats.examples += 1
        stats.tokens += len(item)
        stats.answer_tokens += item.answer_tokens
        encoded.append(item)
    return encoded, stats


def split_eval(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, eval) index split. No eval set below 10 examples or at fraction 0."""
    order = list(range(count))
    random.Random(f"split:{seed}").shuffle(order)
    n_eval = int(round(count * fraction)) if fraction > 0 and count >= 10 else 0
    n_eval = min(max(n_eval, 1 if fraction > 0 and count >= 10 else 0), count - 1)
    return sorted(order[n_eval:]), sorted(order[:n_eval])


# A batch is a list of rows; a row is a list of example indices (one example per row unless packed).
Batch = list[list[int]]


def plan_epoch(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, batching: str,
               max_seq_len: int) -> list[Batch]:
    """The micro-batches of one epoch, as example indices."""
    rng = random.Random(f"epoch:{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if batching == "packed":
        return _packed(order, lengths, batch_size, max_seq_len, rng)
    window = batch_size * GROUP_WINDOW_BATCHES
    batches: list[Batch] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: -lengths[i])
        batches.extend([[i] for i in chunk[j:j + batch_size]] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _packed(order: list[int], lengths: Sequence[int], batch_size: int, max_seq_len: int,
            rng: random.Random) -> list[Batch]:
    """First-fit-decreasing into rows of at most max_seq_len tokens, rows grouped batch_size at a
    time. Sorting happens inside windows so the epoch order stays random."""
    rows: list[list[int]] = []
    window = max(256, batch_size * 32)
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: -lengths[i])
        chunk_rows: list[list[int]] = []
        room: list[int] = []
        for index in chunk:
            need = lengths[index]
            for r, free in enumerate(room):
                if need <= free:
                    chunk_rows[r].append(index)
                    room[r] -= need
                    break
            else:
                chunk_rows.append([index])
                room.append(max_seq_len - need)
        rows.extend(chunk_rows)
    rng.shuffle(rows)
    return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]


def collate(batch: Batch, encoded: Sequence[Encoded], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
    """Tensors for one micro-batch. Length-grouped: right padding + attention_mask. Packed:
    position_ids restart at 0 for each example and attention_mask is left out, which makes
    transformers build a block-diagonal causal mask (examples never attend to each other)."""
    rows_ids: list[list[int]] = []
    rows_labels: list[list[int]] = []
    rows_pos: list[list[int]] = []
    rows_weights: list[list[float]] = []
    for row in batch:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        token_weights: list[float] = []
        for index in row:
            item = encoded[index]
            ids.extend(item.input_ids)
            labels.extend(item.labels)
            pos.extend(range(len(item)))
            token_weights.extend([item.weight] * len(item))
        rows_ids.append(ids)
        rows_labels.append(labels)
        rows_pos.append(pos)
        rows_weights.append(token_weights)
    width = max(len(ids) for ids in rows_ids)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    positions = torch.zeros((len(batch), width), dtype=torch.long)
    weights = torch.zeros((len(batch), width), dtype=torch.float32)
    for r, (ids, labs, pos, wts) in enumerate(zip(rows_ids, rows_labels, rows_pos, rows_weights)):
        n = len(ids)
        input_ids[r, :n] = torch.tensor(ids)
        labels[r, :n] = torch.tensor(labs)
        weights[r, :n] = torch.tensor(wts)
        attention[r, :n] = 1
        positions[r, :n] = torch.tensor(pos)
        # padding is its own "sequence" (positions from 0) so it never joins the last example's block
        positions[r, n:] = torch.arange(width - n)
    out = {"input_ids": input_ids, "labels": labels, "tokens": attention.sum()}
    if any(w != 1.0 for wts in rows_weights for w in wts):  # plain rows keep the unweighted loss path
        out["weights"] = weights
    if packed:
        out["position_ids"] = positions
    else:
        out["attention_mask"] = attention
    return out


def count_answer_tokens(batch: Batch, encoded: Sequence[Encoded]) -> float:
    """Answer tokens that carry a loss, each counted with its row's weight (the first token never
    carries one: nothing predicts it). The step's loss is divided by this, so a soft-label row
    split into weighted copies counts as much as one plain row."""
    return sum(encoded[i].answer_tokens * encoded[i].weight for row in batch for i in row)


def padded_tokens(batches: Iterable[Batch], encoded: Sequence[Encoded]) -> tuple[int, int]:
    """(real tokens, tokens including padding) of a plan, to report padding waste."""
    real = padded = 0
    for batch in batches:
        widths = [sum(len(encoded[i]) for i in row) for row in batch]
        real += sum(widths)
        padded += max(widths) * len(widths)
    return real, padded
