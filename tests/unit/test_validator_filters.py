"""Each filter on its own, with crafted rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.common.taskspec import TaskSpec, normalize_text
from services.validator.config import (
    AgreementConfig,
    DuplicateConfig,
    JudgeConfig,
    LabelConfidenceConfig,
    LengthConfig,
    NearDuplicateConfig,
    OffTopicConfig,
)
from services.validator.config import TestLeakConfig as LeakConfig
from services.validator.filters.agreement import AgreementFilter
from services.validator.filters.duplicate import DuplicateFilter
from services.validator.filters.judge import JudgeFilter, judge_prompt
from services.validator.filters.label_balance import auto_share, balance_cap
from services.validator.filters.label_confidence import LabelConfidenceFilter, label_probability
from services.validator.filters.length import LengthFilter, load_token_counter
from services.validator.filters.near_duplicate import MinHasher, NearDuplicateFilter
from services.validator.filters.off_topic import OffTopicFilter
from services.validator.filters.test_leak import TestLeakFilter as LeakFilter
from services.validator.row import Row, normalize_key

SPEC = TaskSpec(name="t", type="classification", description="Classify banking support messages by intent.",
                labels=["card", "transfer"])


def row(text: str, output: str = "card", line: int = 1, **metadata) -> Row:
    return Row(line=line, id=f"r{line}", input=text, raw_output=output, output=output, metadata=metadata,
               key=normalize_key(text))


def reasons(rows: list[Row]) -> list[str | None]:
    return [r.reason for r in rows]


def test_normalize_key_matches_taskspec() -> None:
    for text in ["Hello,  World!!\n\tFoo", " a\u00a0b\u2003c ", "É-tè_st \x1c x", "", "...", "CAFÉ—au lait"]:
        assert normalize_key(text) == normalize_text(text)


def test_exact_duplicates_within_data_and_against_seeds() -> None:
    rows = [row("My card broke", line=1), row("my CARD  broke!", line=2), row("I lost my card", line=3),
            row("Send money now", line=4)]
    DuplicateFilter(DuplicateConfig(), [normalize_key("i LOST my card.")]).apply(rows)
    assert reasons(rows) == [None, "duplicate", "duplicate", None]
    assert "line 1" in rows[1].detail and "seed 1" in rows[2].detail
    rows = [row("I lost my card", line=1)]
    DuplicateFilter(DuplicateConfig(against_seeds=False), [normalize_key("I lost my card")]).apply(rows)
    assert reasons(rows) == [None]


def test_minhash_estimates_jaccard_and_is_deterministic() -> None:
    texts = ["the quick brown fox jumps over the lazy dog", "the quick brown fox jumped over the lazy dog",
             "an entirely unrelated sentence about bread"]
    a = MinHasher(256, 5).signatures(texts)
    b = MinHasher(256, 5).signatures(texts)
    assert np.array_equal(a, b)

    def jaccard(x: str, y: str) -> float:
        sx = {x[i:i + 5] for i in range(len(x) - 4)}
        sy = {y[i:i + 5] for i in range(len(y) - 4)}
        return len(sx & sy) / len(sx | sy)

    assert abs(float(np.mean(a[0] == a[1])) - jaccard(texts[0], texts[1])) < 0.1
    assert float(np.mean(a[0] == a[2])) < 0.1
    # Batching does not change a signature.
    assert np.array_equal(MinHasher(256, 5).signatures(texts[1:2])[0], a[1])


def test_near_duplicates_keep_one_representative() -> None:
    base = "please block my credit card because it was stolen on the train this morning"
    rows = [row(base, line=1), row(base + " ok", line=2), row("transfer 100 euros to my landlord for rent", line=3),
            row("please block my credit card because it was stolen on the train this morning!!", line=4),
            row("how do i open a new savings account online", line=5)]
    rows[3].key = base + " x"
    check = NearDuplicateFilter(NearDuplicateConfig(threshold=0.8), [normalize_key("How do I open a new savings "
                                                                                  "account online ok")])
    check.apply(rows)
    assert reasons(rows) == [None, "near_duplicate", None, "near_duplicate", "near_duplicate"]
    assert "line 1" in rows[1].detail and "seed 1" in rows[4].detail


def test_test_leak_by_ngram_containment() -> None:
    leak = LeakFilter(LeakConfig(ngram=3, threshold=0.5),
                          [normalize_key("Why was my card blocked yesterday"), normalize_key("refund")])
    rows = [row("why was my card blocked yesterday at the mall", line=1),  # contains a test input
            row("my card was blocked", line=2),                          # shares one 3-gram of 4: 0.5? no
            row("Refund!", line=3),                                      # equal to a short test input
            row("I want a refund for my card fee", line=4)]              # short test input inside: no
    leak.apply(rows)
    assert reasons(rows) == ["test_leak", None, "test_leak", None]
    assert LeakFilter(LeakConfig(), []).notes()


def test_off_topic_by_tfidf_similarity() -> None:
    seeds = ["My card was declined at the shop", "I lost my debit card", "How do I send money to my friend"]
    check = OffTopicFilter(OffTopicConfig(threshold=0.05), SPEC, seeds)
    rows = [row("My debit card was declined again"), row("zebra xylophone quartz nebula")]
    check.apply(rows)
    assert reasons(rows) == [None, "off_topic"]
    skipped = OffTopicFilter(OffTopicConfig(), SPEC, seeds[:2])  # fewer than min_seeds
    rows = [row("zebra xylophone quartz nebula")]
    skipped.apply(rows)
    assert reasons(rows) == [None] and skipped.notes()


def test_length_bounds_and_whitespace_fallback_note() -> None:
    counter = load_token_counter("/nonexistent/tokenizer-dir", None)
    assert counter.tokenizer is None and "whitespace" in counter.note
    check = LengthFilter(SPEC, LengthConfig(max_input_tokens=5, max_output_tokens=1, max_total_tokens=100), counter)
    rows = [row("one two three"), row("one two three four five six"), row("a b", output="card two"),
            row("x " * 90)]
    check.apply(rows)
    assert reasons(rows) == [None, "too_long", "too_long", "too_long"]
    assert "max_output_tokens" in rows[2].detail and check.notes()


def test_length_with_a_real_tokenizer_when_available(request: pytest.FixtureRequest) -> None:
    try:
        model_cache = request.getfixturevalue("model_cache")  # tests/conftest.py's shared model cache
    except pytest.FixtureLookupError:
        model_cache = None  # the catalog's default cache (<repo>/.cache/models), shared by the tests
    counter = load_token_counter("smollm2-135m-instruct", model_cache)
    if counter.tokenizer is None:
        pytest.skip(counter.note)
    assert counter.count(["hello world"])[0] >= 2
    check = LengthFilter(SPEC, LengthConfig(max_total_tokens=40), counter)
    assert 0 < check.overhead < 40


def test_label_confidence_sources() -> None:
    assert label_probability(row("x", label_probability=0.8)) == 0.8
    assert label_probability(row("x", choice_probabilities={"card": 0.3, "transfer": 0.7})) == 0.3
    assert label_probability(row("x", choice_probabilities={"transfer": 1.0})) == 0.0
    assert label_probability(row("x")) is None
    rows = [row("a", label_probability=0.9), row("b", label_probability=0.1), row("c")]
    check = LabelConfidenceFilter(LabelConfidenceConfig(min_probability=0.5))
    check.apply(rows)
    assert reasons(rows) == [None, "low_confidence", None] and check.notes()
    rows = [row("c")]
    LabelConfidenceFilter(LabelConfidenceConfig(require=True)).apply(rows)
    assert reasons(rows) == ["low_confidence"]


def test_agreement_with_predictions_and_seed_classifier(tmp_path: Path) -> None:
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": "r1", "output": "transfer"}) + "\n"
                           + json.dumps({"input": "Move funds to savings", "output": "transfer"}) + "\n")
    check = AgreementFilter(AgreementConfig(enabled=True, predictions=str(predictions)), SPEC, [], predictions)
    rows = [row("Card stuck", "card", line=1), row("move funds to SAVINGS!", "card", line=2),
            row("no prediction", "card", line=3)]
    check.apply(rows)
    assert reasons(rows) == ["disagreement", "disagreement", None]

    seeds = [("my card was declined", "card"), ("lost my debit card", "card"), ("card chip broken", "card"),
             ("send money to my friend", "transfer"), ("transfer funds abroad", "transfer"),
             ("wire money to my landlord", "transfer")]
    check = AgreementFilter(AgreementConfig(enabled=True, seed_classifier=True, min_classifier_probability=0.5),
                            SPEC, seeds, None)
    rows = [row("my debit card was declined", "transfer"), row("my debit card was declined", "card")]
    check.apply(rows)
    assert reasons(rows) == ["disagreement", None]


def test_judge_filter_batches_and_threshold() -> None:
    calls: list[int] = []

    def grader(prompts: list[str]) -> list[float]:
        calls.append(len(prompts))
        return [0.2 if "bad" in p else 0.9 for p in prompts]

    rows = [row(f"good {i}") for i in range(5)] + [row("bad one")]
    JudgeFilter(JudgeConfig(enabled=True, batch_size=4), SPEC, grader).apply(rows)
    assert calls == [4, 2] and reasons(rows) == [None] * 5 + ["judge_rejected"]
    prompt = judge_prompt(SPEC, "Reject slang.", rows[0])
    assert "Reject slang." in prompt and "Input: good 0" in prompt and prompt.endswith("Answer:")


def test_label_balance_cap() -> None:
    assert balance_cap({"a": 6, "b": 2, "c": 2}, 0.5) == 4
    assert balance_cap({"a": 3, "b": 3}, 0.5) is None
    assert balance_cap({"a": 100, "b": 10, "c": 10, "d": 10}, 0.4) == 20
    assert balance_cap({"a": 5, "b": 1}, 0.3) == 0  # impossible share: the caller notes it
    assert auto_share(2) == 1.0 and auto_share(10) == 0.2


def test_byte_bound_shortcut_never_changes_a_verdict(request: pytest.FixtureRequest) -> None:
    """Rows proven short by their byte length skip tokenization; the verdicts must equal counting
    every row exactly (checked with the student's tokenizer where available, else words)."""
    try:
        model_cache = request.getfixturevalue("model_cache")
    except pytest.FixtureLookupError:
        model_cache = None
    counter = load_token_counter("smollm2-135m-instruct", model_cache)
    texts = ["short", "a b c d e f g h", "1234567890 " * 3, "é" * 12, "naïve café ☕ " * 2, "x" * 40, "word " * 9]
    config = LengthConfig(max_input_tokens=12, max_output_tokens=3, max_total_tokens=60 + 30)
    fast = LengthFilter(SPEC, config, counter)
    exact = LengthFilter(SPEC, config, counter)
    exact.byte_bound = False
    for output in ("card", "card card card card"):
        a = [row(t, output) for t in texts]
        b = [row(t, output) for t in texts]
        fast.apply(a)
        exact.apply(b)
        assert [r.reason for r in a] == [r.reason for r in b]
    assert fast.byte_bound
    for text in texts:  # the bound itself
        assert counter.count([text])[0] <= len(text.encode()) + 1
