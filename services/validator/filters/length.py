"""Length: token bounds measured with the student's own tokenizer. A row that does not fit the
student's context is dropped, never truncated (a truncated JSON answer teaches broken JSON).

Only the tokenizer is loaded (catalog.resolve_model → AutoTokenizer). If no tokenizer can be
loaded, lengths fall back to whitespace-separated words and the report says so."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from services.common.references import ModelReferences
from services.common.taskspec import TaskSpec
from services.validator.config import LengthConfig
from services.validator.row import Row

log = logging.getLogger(__name__)


class TokenCounter:
    """Counts tokens of many texts at once; ``tokenizer`` is None for the whitespace fallback."""

    def __init__(self, tokenizer: Any | None, name: str, note: str = "") -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.note = note

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self.tokenizer is None:
            return [len(text.split()) for text in texts]
        encoded = self.tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return [len(ids) for ids in encoded]


def load_token_counter(ref: str, model_cache: Path | None,
                       references: ModelReferences | None = None) -> TokenCounter:
    """The student's tokenizer, or the whitespace fallback with a note saying why. In the service
    ``references`` confines the reference (a path outside the allowed roots is PERMISSION_DENIED,
    not a fallback); without it (a user's own process) any local directory or catalog name works."""
    if references is not None:
        references.check(ref, "validation.length.tokenizer", "directory")
    try:
        path = Path(ref)
        if references is not None:
            path = references.resolve(ref, "validation.length.tokenizer", "directory")
        elif not path.is_dir():
            from services.common.catalog import resolve_model  # materializes the student once, cached

            path = resolve_model(ref, model_cache)  # None: the catalog's default cache
        from transformers import AutoTokenizer  # imported late: slow, and useless without a checkpoint

        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return TokenCounter(tokenizer, ref)
    except Exception as exc:  # no catalog, no package, no files: measure something rather than nothing
        note = (f"length: no tokenizer for {ref!r} ({type(exc).__name__}: {exc}); token counts are "
                "whitespace-separated words instead, so the bounds are approximate")
        log.warning(note)
        return TokenCounter(None, "whitespace", note)


def prompt_overhead(counter: TokenCounter, spec: TaskSpec) -> int:
    """Tokens of the student prompt around the input (system prompt, chat markup): the same for every
    row, so it is measured once instead of rendering the template per row."""
    from services.common.student_format import render_prompt, system_prompt

    tokenizer = counter.tokenizer
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        try:
            return counter.count([render_prompt(tokenizer, spec, "", "")])[0]
        except Exception:  # a template that refuses an empty turn: count the system prompt alone
            pass
    return counter.count([system_prompt(spec)])[0]


def byte_bound_holds(counter: TokenCounter) -> bool:
    """Whether a text of n UTF-8 bytes is known to have at most n + 1 tokens: true for byte-level
    BPE, SentencePiece-style BPE/Unigram with byte fallback and WordPiece, whose tokens each cover
    at least one character of the (at most one-character-longer) normalised text — unless the
    normaliser applies a compatibility decomposition (NFKC/NFKD), which can expand one character
    into many."""
    if counter.tokenizer is None:
        return True  # whitespace words: never more than bytes
    backend = getattr(counter.tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False  # a slow tokenizer: no way to inspect it, count every row
    return "NFK" not in repr(backend.normalizer)


class LengthFilter:
    reason = "too_long"

    def __init__(self, spec: TaskSpec, config: LengthConfig, counter: TokenCounter) -> None:
        self.config = config
        self.counter = counter
        self.overhead = prompt_overhead(counter, spec)
        self.unit = "tokens" if counter.tokenizer is not None else "words"
        self.byte_bound = byte_bound_holds(counter)

    @staticmethod
    def _input(row: Row) -> str:
        return row.input if not row.context else f"{row.context}\n\n{row.input}"

    def _surely_fits(self, row: Row) -> bool:
        """Cheap proof that a row fits (tokens <= bytes + 1), so that only rows near a bound pay
        for tokenization — tokenizing dominated the whole chain's time otherwise."""
        cfg = self.config
        n_in = len(self._input(row).encode("utf-8")) + 1
        n_out = len(row.output.encode("utf-8")) + 1
        return (n_in <= cfg.max_input_tokens and n_out <= cfg.max_output_tokens
                and self.overhead + n_in + n_out <= cfg.max_total_tokens)

    def apply(self, rows: list[Row]) -> None:
        if self.byte_bound:
            rows = [row for row in rows if not self._surely_fits(row)]
        if not rows:
            return
        inputs = self.counter.count([self._input(row) for row in rows])
        outputs = self.counter.count([row.output for row in rows])
        cfg = self.config
        for row, n_in, n_out in zip(rows, inputs, outputs):
            total = self.overhead + n_in + n_out
            if n_in > cfg.max_input_tokens:
                row.reject(self.reason, f"input has {n_in} {self.unit} > max_input_tokens {cfg.max_input_tokens}")
            elif n_out > cfg.max_output_tokens:
                row.reject(self.reason, f"output has {n_out} {self.unit} > max_output_tokens {cfg.max_output_tokens}")
            elif total > cfg.max_total_tokens:
                row.reject(self.reason, f"prompt + answer is {total} {self.unit} (prompt overhead {self.overhead}) "
                           f"> max_total_tokens {cfg.max_total_tokens}")

    def notes(self) -> list[str]:
        return [self.counter.note] if self.counter.note else []
