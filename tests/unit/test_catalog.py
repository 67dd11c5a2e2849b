"""The offline model catalog: packaged GGUF → safetensors checkpoints with correct tokenizers.

The two bundled models are materialized once per machine (tests/conftest.py ``materialized``)
and then checked for what goes wrong with transformers' own GGUF conversion: exact token ids
(llama.cpp's ids are the oracle for Gemma 3), BOS/EOS handling, the chat template, no
``tokenizer.model``, and real greedy generation that stops at the right token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.common import catalog
from services.common.errors import DataLoss, FailedPrecondition, NotFound, UnsafeModelError

DATA = Path(__file__).resolve().parents[1] / "data"

SMOLLM2 = "smollm2-135m-instruct"
GEMMA = "gemma3-270m"

# Ids of the SmolLM2 tokenizer rebuilt from the GGUF. Cross-checked against the BPE that
# transformers 4.57 itself builds from the same GGUF (same vocabulary and merges; it differs
# only in the BOS/EOS/decoder handling that this test file checks separately) and by the
# round trips below. No BOS: SmolLM2 never prepends one.
SMOLLM2_IDS: dict[str, list[int]] = {
    "What is 2+2?": [1780, 314, 216, 34, 27, 34, 47],
    "Hello world, it's 2024! naïve café": [
        19556, 905, 28, 357, 506, 216, 34, 32, 34, 36, 17, 15486, 46494, 37366,
    ],
    '  two  spaces\n\nnewlines\ttab {"label": "positive"}': [
        216, 827, 216, 5600, 198, 198, 2241, 5110, 197, 15999, 9583, 5072, 1799, 476, 16185, 23597,
    ],
    "Sentence: I hated the noisy room.\nSentiment: negative\n": [
        35658, 535, 42, 339, 33376, 260, 24369, 3589, 30, 198, 35658, 2572, 42, 3524, 198,
    ],
    "emoji 🤖 and 日本語 text": [
        391, 33777, 15107, 114, 240, 284, 17097, 241, 115, 40993, 179, 120, 248, 1694,
    ],
    "3.14159 costs $1,234.56": [35, 30, 33, 36, 33, 37, 41, 3499, 1885, 33, 28, 34, 35, 36, 30, 37, 38],
    "<|im_start|>user\nhi<|im_end|>\n": [1, 4093, 198, 6004, 2, 198],
}


def gemma_oracle() -> dict[str, list[int]]:
    return json.loads((DATA / "gemma3-270m-token-ids.json").read_text(encoding="utf-8"))["ids"]


@pytest.fixture(scope="module")
def smollm2_dir(materialized: Callable[[str], Path]) -> Path:
    return materialized(SMOLLM2)


@pytest.fixture(scope="module")
def gemma_dir(materialized: Callable[[str], Path]) -> Path:
    return materialized(GEMMA)


def load_tokenizer(directory: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


@pytest.fixture(scope="module")
def smollm2_tok(smollm2_dir: Path) -> Any:
    return load_tokenizer(smollm2_dir)


@pytest.fixture(scope="module")
def gemma_tok(gemma_dir: Path) -> Any:
    return load_tokenizer(gemma_dir)


# ---------------------------------------------------------------------------- checkpoint files


@pytest.mark.parametrize("name", [SMOLLM2, GEMMA])
def test_materialized_checkpoint_is_complete_and_safe(materialized: Callable[[str], Path], name: str) -> None:
    directory = materialized(name)
    names = {p.name for p in directory.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "MANIFEST.json"} <= names
    # transformers' GGUF path copies the whole GGUF as tokenizer.model; pickles are never written.
    assert "tokenizer.model" not in names
    assert not [n for n in names if n.endswith(catalog.PICKLE_SUFFIXES) or n.endswith(".gguf")]
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    assert manifest["recipe_version"] == catalog.RECIPE_VERSION
    assert set(manifest["files"]) == names - {"MANIFEST.json"}
    assert manifest["source"]["gguf_sha256"] == catalog.get_entry(name).gguf.sha256


def test_second_resolve_is_a_cache_hit(smollm2_dir: Path, model_cache: Path) -> None:
    before = (smollm2_dir / "MANIFEST.json").stat().st_mtime_ns
    started = time.monotonic()
    again = catalog.resolve_model(SMOLLM2, model_cache)
    assert time.monotonic() - started < 2.0
    assert again == smollm2_dir
    assert (smollm2_dir / "MANIFEST.json").stat().st_mtime_ns == before
    # Hub ids of catalog entries are aliases of their names.
    assert catalog.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", model_cache) == smollm2_dir


def test_manifest_sha256s_match_and_detect_tampering(smollm2_dir: Path, tmp_path: Path) -> None:
    catalog.verify_manifest(smollm2_dir)
    # A copy with one byte changed in a small file must fail verification.
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in smollm2_dir.iterdir():
        if p.name != "model.safetensors":
            (copy / p.name).write_bytes(p.read_bytes())
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    del manifest["files"]["model.safetensors"]
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    catalog.verify_manifest(copy)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("576", "577"))
    with pytest.raises(DataLoss, match="config.json"):
        catalog.verify_manifest(copy)


# ---------------------------------------------------------------------------- SmolLM2 tokenizer


def test_smollm2_exact_ids(smollm2_tok: Any) -> None:
    for text, ids in SMOLLM2_IDS.items():
        assert smollm2_tok(text).input_ids == ids, text
        assert smollm2_tok.decode(ids) == text  # exact byte-level round trip, no clean-up of spaces


def test_smollm2_special_tokens(smollm2_tok: Any, smollm2_dir: Path) -> None:
    assert smollm2_tok.eos_token == "<|im_end|>" and smollm2_tok.eos_token_id == 2
    assert smollm2_tok.pad_token == "<|im_end|>" and smollm2_tok.pad_token_id == 2
    assert smollm2_tok.bos_token is None
    assert smollm2_tok("hello").input_ids == [28120]  # no BOS added on encode
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        ids = smollm2_tok(special).input_ids
        assert len(ids) == 1 and ids[0] in smollm2_tok.all_special_ids, special
    # Digits are split one by one, as in the original tokenizer.
    pieces = smollm2_tok.convert_ids_to_tokens(smollm2_tok("year 12345").input_ids)
    assert pieces[-5:] == ["1", "2", "3", "4", "5"]
    assert smollm2_tok.decode(smollm2_tok("<|im_end|>ok").input_ids, skip_special_tokens=True) == "ok"
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2 and generation["pad_token_id"] == 2


def test_smollm2_chat_template_comes_from_the_gguf(smollm2_tok: Any) -> None:
    text = smollm2_tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")


# ---------------------------------------------------------------------------- Gemma 3 tokenizer


def test_gemma_matches_llama_cpp_ids(gemma_tok: Any) -> None:
    oracle = gemma_oracle()
    assert len(oracle) == 6
    for text, ids in oracle.items():
        assert gemma_tok(text).input_ids == ids, text


def test_gemma_bos_eos_and_round_trip(gemma_tok: Any, gemma_dir: Path) -> None:
    assert gemma_tok.bos_token == "<bos>" and gemma_tok.bos_token_id == 2
    assert gemma_tok.eos_token == "<eos>" and gemma_tok.eos_token_id == 1
    assert gemma_tok.pad_token_id == 0
    assert gemma_tok("x", add_special_tokens=False).input_ids[0] != 2
    for text, ids in gemma_oracle().items():
        if "<start_of_turn>" not in text:
            assert gemma_tok.decode(ids, skip_special_tokens=True) == text
    # Whole words, not the tiny Unigram pieces transformers' own conversion produces.
    assert gemma_tok.convert_ids_to_tokens(gemma_tok("The capital of France is").input_ids) == [
        "<bos>", "The", "▁capital", "▁of", "▁France", "▁is",
    ]
    # Characters outside the vocabulary fall back to bytes instead of <unk>.
    assert gemma_tok.unk_token_id not in gemma_tok("\x01\x02 zzz").input_ids
    generation = json.loads((gemma_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [1, 106]  # <eos> and <end_of_turn>
    assert gemma_tok.convert_ids_to_tokens(106) == "<end_of_turn>"


def test_sentencepiece_merges_follow_the_score_ranks() -> None:
    from services.common.gguf_tokenizers import sentencepiece_merges

    tokens = ["<pad>", "a", "b", "c", "ab", "bc", "abc"]
    scores = [-1000.0, -10.0, -11.0, -12.0, -1.0, -0.0, -2.0]  # "bc" ranks first, then "ab"
    types = [3, 1, 1, 1, 1, 1, 1]
    assert sentencepiece_merges(tokens, scores, types) == [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]


# ---------------------------------------------------------------------------- generation


def test_smollm2_answers_a_chat_prompt_and_stops_at_im_end(smollm2_dir: Path, smollm2_tok: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), use_safetensors=True)
    enc = smollm2_tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=64, do_sample=False)
    new = out[0][enc["input_ids"].shape[1]:].tolist()
    assert new[-1] == smollm2_tok.eos_token_id, smollm2_tok.decode(new)  # stopped at <|im_end|>
    answer = smollm2_tok.decode(new, skip_special_tokens=True)
    assert "4" in answer, answer


def test_gemma_base_continues_a_few_shot_prompt_with_a_label(gemma_dir: Path, gemma_tok: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gemma_dir), use_safetensors=True)
    prompt = (
        "Sentence: I loved this movie, it was wonderful.\nSentiment: positive\n"
        "Sentence: The food was cold and the waiter was rude.\nSentiment: negative\n"
        "Sentence: What a fantastic day at the beach!\nSentiment: positive\n"
        "Sentence: I hated the noisy room.\nSentiment:"
    )
    enc = gemma_tok(prompt, return_tensors="pt")
    assert enc["input_ids"][0, 0].item() == 2  # BOS, exactly once
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    continuation = gemma_tok.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert continuation.split()[0] == "negative", continuation


# ---------------------------------------------------------------------------- resolution rules


def test_local_directory_with_safetensors_resolves_to_itself(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert catalog.resolve_model(str(tmp_path), tmp_path / "cache") == tmp_path.resolve()


def test_pickle_only_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    # Not a real pickle: it must be refused by name, never opened.
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UnsafeModelError, match="pytorch_model.bin.*safetensors"):
        catalog.resolve_model(tmp_path, tmp_path / "cache")


def test_unknown_name_lists_the_catalog(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        catalog.resolve_model("no-such-model", tmp_path)
    for name in catalog.catalog_names():
        assert name in str(info.value)
    with pytest.raises(NotFound, match="does not exist"):
        catalog.resolve_model(str(tmp_path / "missing"), tmp_path)


def test_hub_entries_come_only_from_the_local_hf_cache(tmp_path: Path) -> None:
    hf_cache = tmp_path / "hub"
    hf_cache.mkdir()
    with pytest.raises(NotFound, match="huggingface-cli download Qwen/Qwen3-0.6B"):
        catalog.resolve_model("qwen3-0.6b", tmp_path / "cache", hf_cache_dir=hf_cache)
    # The layout huggingface_hub writes: refs/main names the snapshot folder.
    repo = hf_cache / "models--Qwen--Qwen3-0.6B"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    assert catalog.resolve_model("Qwen/Qwen3-0.6B", tmp_path / "cache", hf_cache_dir=hf_cache) == snapshot


def test_environment_that_cannot_convert_says_how_to_pull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The generator's vLLM environment has no gguf package: it may only use converted checkpoints.
    monkeypatch.setattr(catalog, "_missing_conversion_modules", lambda: ["gguf"])
    with pytest.raises(FailedPrecondition, match=f"python -m services.common.catalog pull {GEMMA}"):
        catalog.resolve_model(GEMMA, tmp_path)
    assert not list(tmp_path.iterdir())


def test_catalog_entries_are_consistent() -> None:
    names = catalog.catalog_names()
    assert len(names) == len(set(names))
    assert catalog.get_entry(SMOLLM2).is_instruct and catalog.get_entry(SMOLLM2).role == "student"
    assert not catalog.get_entry(GEMMA).is_instruct and catalog.get_entry(GEMMA).role == "teacher"
    for entry in catalog.CATALOG:
        assert (entry.kind == "gguf-package") == (entry.gguf is not None)


def test_cli_list(capsys: pytest.CaptureFixture[str], model_cache: Path) -> None:
    assert catalog.main(["--cache-dir", str(model_cache), "list"]) == 0
    out = capsys.readouterr().out
    assert SMOLLM2 in out and GEMMA in out and "llama-3.3-70b-instruct" in out


# ---------------------------------------------------------------------------- atomic, locked writes


def test_concurrent_materialization_builds_once(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model"
    calls: list[int] = []

    def build(out: Path) -> dict[str, Any]:
        calls.append(1)
        (out / "model.safetensors").write_bytes(b"x" * 1000)
        time.sleep(0.5)  # long enough for the other thread to be waiting on the lock
        (out / "config.json").write_text("{}")
        return {"source": {"test": True}}

    def current(d: Path) -> bool:
        return (d / catalog.MANIFEST).is_file()

    results: list[Path] = []

    def worker() -> None:
        results.append(catalog.materialize_dir(target, build, current))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [target, target]
    assert calls == [1]
    assert sorted(p.name for p in target.iterdir()) == ["MANIFEST.json", "config.json", "model.safetensors"]
    assert not list(target.parent.glob(".model.tmp-*"))


def test_failed_build_leaves_nothing_half_written(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def build(out: Path) -> dict[str, Any]:
        (out / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("conversion crashed")

    with pytest.raises(RuntimeError):
        catalog.materialize_dir(target, build, lambda d: (d / catalog.MANIFEST).is_file())
    assert not target.exists()
    assert not list(tmp_path.glob(".model.tmp-*"))
