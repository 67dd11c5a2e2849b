"""Rebuild correct Hugging Face tokenizers from the metadata inside a GGUF file.

transformers (4.57) can turn a GGUF's tokenizer into a ``tokenizers`` object itself, but for both
bundled catalog models the result is wrong (see "Known traps" in DESIGN.md):

* SmolLM2 gets bos = eos = ``<|im_start|>``, a BOS on every encode, a ``▁``/byte-fallback decoder
  and the whole 98 MB GGUF copied as ``tokenizer.model``.
* Gemma 3 gets a Unigram model built from the GGUF ``scores``; those are negative *merge ranks*,
  not log-probabilities, so words fall apart into tiny pieces.

This module builds the tokenizers the way the original Hugging Face repositories (and llama.cpp)
do, straight from the GGUF key/value metadata, read with ``gguf.GGUFReader`` (a memory map: the
weights are never touched). Nothing here imports or executes code shipped with a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from services.common.errors import FailedPrecondition, InvalidArgument

# llama.cpp token types (gguf.TokenType): NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6.
_NORMAL = 1
_CONTROL = 3
_USER_DEFINED = 4

# Gemma 3's instruction format. The base GGUF carries no chat template, but the vocabulary has the
# turn markers and the upstream Hugging Face repository ships this template even for the base
# model, so chat-formatted prompts keep working (a base model just follows them less reliably).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class GGUFVocab:
    """The tokenizer part of a GGUF's metadata, as plain Python values."""

    model: str  # tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
    pre: str  # tokenizer.ggml.pre: llama.cpp's name for the pre-tokenizer regex set
    tokens: list[str]
    token_types: list[int]
    scores: list[float] | None
    merges: list[str] | None
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    chat_template: str | None
    architecture: str
    context_length: int


@dataclass(frozen=True)
class BuiltTokenizer:
    """A ``tokenizers.Tokenizer`` plus what ``tokenizer_config.json`` and the generation config need."""

    tokenizer: Tokenizer
    bos_token: str | None
    eos_token: str
    pad_token: str | None
    unk_token: str | None
    chat_template: str | None
    model_max_length: int
    # Token ids at which generation must stop (the first is the tokenizer's eos).
    stop_token_ids: tuple[int, ...]
    pad_token_id: int | None
    bos_token_id: int | None
    # Listed in tokenizer_config so that ``all_special_ids``/``all_special_tokens`` know them
    # (every control token is special in tokenizer.json anyway, so decoding skips them all).
    additional_special_tokens: tuple[str, ...] = ()
    extra_config: dict[str, Any] = field(default_factory=dict)

    def tokenizer_config(self) -> dict[str, Any]:
        """Content of ``tokenizer_config.json`` for ``PreTrainedTokenizerFast``.

        ``PreTrainedTokenizerFast`` (not a model-specific class) so that transformers uses
        tokenizer.json exactly as written here and does not rebuild the post-processor from its
        own ``add_bos_token`` defaults.
        """
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": self.pad_token,
            "unk_token": self.unk_token,
            "model_max_length": self.model_max_length,
            # Decoding must give back the exact text (JSON outputs, labels): no " ." → "." clean-up.
            "clean_up_tokenization_spaces": False,
            # Decoder-only models take no token_type_ids; without this generate(**enc) fails.
            "model_input_names": ["input_ids", "attention_mask"],
        }
        if self.additional_special_tokens:
            config["additional_special_tokens"] = list(self.additional_special_tokens)
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template
        config.update(self.extra_config)
        return config


def read_gguf_vocab(gguf_path: Path) -> GGUFVocab:
    """Read the tokenizer metadata of ``gguf_path`` without loading any tensor."""
    try:
        reader = GGUFReader(str(gguf_path), "r")
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{gguf_path}: not a readable GGUF file: {exc}") from exc
    fields = reader.fields

    def scalar(key: str) -> Any:
        f = fields.get(key)
        return None if f is None else f.contents()

    def strings(key: str) -> list[str] | None:
        f = fields.get(key)
        if f is None:
            return None
        # Direct access to the parts: f.contents(i) per element is far too slow for 262k tokens.
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def numbers(key: str) -> list[Any] | None:
        f = fields.get(key)
        if f is None:
            return None
        return np.concatenate([f.parts[i] for i in f.data]).tolist()

    tokens = strings("tokenizer.ggml.tokens")
    model = scalar("tokenizer.ggml.model")
    if tokens is None or model is None:
        raise FailedPrecondition(f"{gguf_path}: the GGUF has no tokenizer metadata (tokenizer.ggml.*)")
    types = numbers("tokenizer.ggml.token_type") or [_NORMAL] * len(tokens)
    add_bos = scalar("tokenizer.ggml.add_bos_token")
    architecture = str(scalar("general.architecture") or "")
    context_length = scalar(f"{architecture}.context_length")
    return GGUFVocab(
        model=str(model),
        pre=str(scalar("tokenizer.ggml.pre") or "default"),
        tokens=tokens,
        token_types=[int(t) for t in types],
        scores=numbers("tokenizer.ggml.scores"),
        merges=strings("tokenizer.ggml.merges"),
        bos_id=scalar("tokenizer.ggml.bos_token_id"),
        eos_id=scalar("tokenizer.ggml.eos_token_id"),
        unk_id=scalar("tokenizer.ggml.unknown_token_id"),
        pad_id=scalar("tokenizer.ggml.padding_token_id"),
        add_bos=bool(add_bos) if add_bos is not None else False,
        chat_template=scalar("tokenizer.chat_template"),
        architecture=architecture,
        context_length=int(context_length) if context_length is not None else 2048,
    )


def build_smollm2_tokenizer(vocab: GGUFVocab, model_max_length: int = 8192) -> BuiltTokenizer:
    """Byte-level BPE as in HuggingFaceTB/SmolLM2-*: digits one by one, ``<|im_end|>`` as eos/pad, no BOS."""
    if vocab.model != "gpt2" or vocab.merges is None:
        raise FailedPrecondition(f"expected a byte-level BPE ('gpt2') GGUF tokenizer, got {vocab.model!r}")
    token_to_id = {tok: i for i, tok in enumerate(vocab.tokens)}
    merges = [tuple(m.split(" ", 1)) for m in vocab.merges]
    bpe = models.BPE(
        vocab=token_to_id,
        merges=merges,
        unk_token=None,
        fuse_unk=False,
        byte_fallback=False,
    )
    tok = Tokenizer(bpe)
    tok.normalizer = None
    # llama.cpp's "smollm" pre-tokenizer is "\p{N}" then the GPT-2 regex; in tokenizers that is
    # Digits(individual_digits) followed by ByteLevel with its GPT-2 regex, no prefix space.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    # ByteLevel post-processing only fixes offsets; it adds no token (no BOS for SmolLM2).
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(vocab.tokens, vocab.token_types) if ty == _CONTROL]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    eos = "<|im_end|>"
    if eos not in token_to_id:
        raise FailedPrecondition("the SmolLM2 GGUF vocabulary has no <|im_end|> token")
    eos_id = token_to_id[eos]
    return BuiltTokenizer(
        tokenizer=tok,
        bos_token=None,
        eos_token=eos,
        pad_token=eos,
        unk_token="<|endoftext|>" if "<|endoftext|>" in token_to_id else None,
        chat_template=vocab.chat_template,
        model_max_length=model_max_length,
        stop_token_ids=(eos_id,),
        pad_token_id=eos_id,
        bos_token_id=None,
        additional_special_tokens=tuple(t for t in control if t not in (eos, "<|endoftext|>")),
        extra_config={"add_prefix_space": False},
    )


def sentencepiece_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """BPE merges that reproduce SentencePiece/llama.cpp merging from a vocabulary with scores.

    llama.cpp's SPM tokenizer repeatedly merges the adjacent pair whose concatenation is a
    vocabulary token with the highest score (leftmost on ties). A BPE model whose merges are every
    split ``(left, right)`` of every normal token, ranked by that token's score, does the same.
    """
    vocab = {tok: i for i, tok in enumerate(tokens)}
    ranked: list[tuple[float, int, str, str]] = []
    for tok, score, ty in zip(tokens, scores, types):
        if ty != _NORMAL or len(tok) < 2:
            continue
        tok_id = vocab[tok]
        for cut in range(1, len(tok)):
            left, right = tok[:cut], tok[cut:]
            if left in vocab and right in vocab:
                ranked.append((-score, tok_id, left, right))
    # Highest score first; the token id only makes the order deterministic.
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [(left, right) for _, _, left, right in ranked]


def build_gemma3_tokenizer(vocab: GGUFVocab, model_max_length: int = 32768) -> BuiltTokenizer:
    """BPE with byte fallback as in google/gemma-3-*.

    ``▁`` for spaces, BOS added on encode, generation stops at ``<eos>`` or ``<end_of_turn>``.
    """
    if vocab.model != "llama" or vocab.scores is None:
        raise FailedPrecondition(
            f"expected a SentencePiece ('llama') GGUF tokenizer with scores, got {vocab.model!r}"
        )
    token_to_id = {tok: i for i, tok in enumerate(vocab.tokens)}
    merges = sentencepiece_merges(vocab.tokens, vocab.scores, vocab.token_types)
    unk = vocab.tokens[vocab.unk_id] if vocab.unk_id is not None else "<unk>"
    bpe = models.BPE(
        vocab=token_to_id,
        merges=merges,
        unk_token=unk,
        fuse_unk=True,
        byte_fallback=True,  # characters outside the vocabulary become <0xNN> byte tokens
    )
    tok = Tokenizer(bpe)
    # Gemma's SentencePiece model: spaces are "▁", no dummy prefix (add_space_prefix is false).
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = None
    bos = vocab.tokens[vocab.bos_id] if vocab.bos_id is not None else "<bos>"
    bos_id = token_to_id[bos]
    if vocab.add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0",
            pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
            special_tokens=[(bos, bos_id)],
        )
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    # Control tokens (<bos>, <start_of_turn>, <unusedN>...) are special. User-defined tokens (runs
    # of newlines/spaces/tabs, image markers) are matched in the raw text before the model, as
    # llama.cpp does; only the non-whitespace ones are special (skipped when decoding).
    added: list[AddedToken] = []
    for t, ty in zip(vocab.tokens, vocab.token_types):
        if ty == _CONTROL:
            added.append(AddedToken(t, special=True, normalized=False))
        elif ty == _USER_DEFINED:
            added.append(AddedToken(t, special=not t.isspace(), normalized=False))
    tok.add_tokens([a for a in added if not a.special])
    tok.add_special_tokens([a for a in added if a.special])
    eos = vocab.tokens[vocab.eos_id] if vocab.eos_id is not None else "<eos>"
    stop = [token_to_id[eos]]
    # Gemma ends a chat turn with <end_of_turn>, not <eos>: generation must stop at either.
    if "<end_of_turn>" in token_to_id:
        stop.append(token_to_id["<end_of_turn>"])
    pad = vocab.tokens[vocab.pad_id] if vocab.pad_id is not None else "<pad>"
    return BuiltTokenizer(
        tokenizer=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token=unk,
        chat_template=vocab.chat_template or GEMMA3_CHAT_TEMPLATE,
        model_max_length=model_max_length,
        stop_token_ids=tuple(stop),
        pad_token_id=token_to_id[pad],
        bos_token_id=bos_id,
        additional_special_tokens=tuple(t for t in ("<start_of_turn>", "<end_of_turn>") if t in token_to_id),
        extra_config={"add_bos_token": vocab.add_bos, "add_eos_token": False},
    )


def build_tokenizer(gguf_path: Path, family: str) -> BuiltTokenizer:
    """Build the tokenizer of ``gguf_path`` for a known model ``family`` ("smollm2" or "gemma3")."""
    # Reading is the slow part (GGUFReader parses every one of 262k vocabulary entries): once.
    vocab = read_gguf_vocab(gguf_path)
    if family == "smollm2":
        return build_smollm2_tokenizer(vocab, model_max_length=vocab.context_length)
    if family == "gemma3":
        return build_gemma3_tokenizer(vocab, model_max_length=vocab.context_length)
    raise InvalidArgument(f"no GGUF tokenizer builder for family {family!r}; known: smollm2, gemma3")


def save_tokenizer(built: BuiltTokenizer, directory: Path) -> list[Path]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (never tokenizer.model)."""
    directory.mkdir(parents=True, exist_ok=True)
    tok_path = directory / "tokenizer.json"
    built.tokenizer.save(str(tok_path))
    config = built.tokenizer_config()
    cfg_path = directory / "tokenizer_config.json"
    cfg_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    special = {
        key: config[key]
        for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        if config.get(key) is not None
    }
    map_path = directory / "special_tokens_map.json"
    map_path.write_text(json.dumps(special, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [tok_path, cfg_path, map_path]
