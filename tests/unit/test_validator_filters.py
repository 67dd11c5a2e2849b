"""Each filter on its own, with crafted rows."""

from __future__ import annotations

import json
import random
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
from services.validator.filters.test_leak import _PrefixIndex, lcs_length, similarity
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


def _lcs_by_table(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_bit_parallel_lcs_matches_the_textbook_table() -> None:
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 12))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]  # over 64 words: more than one machine word
        assert lcs_length(a, b) == lcs_length(b, a) == _lcs_by_table(a, b)


def test_prefix_filter_finds_every_pair_over_the_threshold() -> None:
    """The pruned candidate search returns exactly what scoring every test input would."""
    rng = random.Random(1)
    vocab = "the my a card money what is how i to balance transfer why blocked pay".split()
    tests = [[rng.choice(vocab) for _ in range(rng.randint(1, 14))] for _ in range(60)]
    probes = [[rng.choice(vocab) for _ in range(rng.randint(1, 14))] for _ in range(150)]
    probes += [t[:-1] + ["x"] for t in tests] + [["hello"] + t for t in tests]
    for built, asked in [(0.3, 0.3), (0.5, 0.5), (0.75, 0.8), (0.8, 0.95), (1.0, 1.0)]:
        index = _PrefixIndex(tests, built)
        for words in probes:
            expected = [(n, similarity(words, t)) for n, t in enumerate(tests)
                        if similarity(words, t) >= asked and similarity(words, t) > 0]
            assert list(index.matches(words, asked)) == expected


TEST_MESSAGE = "Why was my card blocked at the shop yesterday evening"  # 10 words


def _leak(test: list[str], seeds: list[tuple[str, str]] | None = None, **config) -> LeakFilter:
    return LeakFilter(LeakConfig(**config), [normalize_key(t) for t in test],
                      [(normalize_key(text), group) for text, group in seeds or []])


def test_test_leak_catches_copies_not_paraphrases_that_share_a_phrase() -> None:
    leak = _leak(["What is the minimum age?", TEST_MESSAGE, "refund"], calibrate=False)
    assert leak.threshold == 0.8
    rows = [
        # A long text that merely repeats a short test message's phrase (the old score: 0.67).
        row("What is the minimum amount of money I can pay with American Express?", line=1),
        row("what is the MINIMUM age", line=2),                                        # exact copy after normalising
        row("Why was my card declined at the shop yesterday evening", line=3),         # one word changed
        row("Why was my card declined at the store yesterday evening", line=4),        # two words changed
        row("Hi, why was my card blocked at the shop yesterday evening? Thanks", line=5),  # two extra words
        row("my card was blocked", line=6),                                            # a phrase in common
        row("Refund!", line=7),                                                        # equal to a one-word test
        row("I want a refund for my card fee", line=8),                                # the one word inside
        row("Why is my card blocked", line=9),
    ]
    leak.apply(rows)
    assert reasons(rows) == [None, "test_leak", "test_leak", "test_leak", "test_leak", None, "test_leak", None, None]
    assert "test example 1" in rows[1].detail and "test example 2" in rows[2].detail
    assert similarity(normalize_key(rows[0].input).split(), normalize_key("What is the minimum age?").split()) < 0.5
    assert _leak([]).notes() and "no test set" in _leak([]).notes()[0]


def test_calibration_raises_the_threshold_above_similar_seeds_of_one_class() -> None:
    seeds = [("What is my account balance", "balance"), ("What is my savings account balance", "balance"),
             ("I lost my card", "card")]
    pair = similarity(normalize_key(seeds[0][0]).split(), normalize_key(seeds[1][0]).split())
    assert pair == pytest.approx(10 / 11)
    calibrated = _leak([TEST_MESSAGE], seeds)
    assert calibrated.threshold == pytest.approx(pair + 0.05)
    (note,) = calibrated.notes()
    assert "1 seed-input pair(s) and 0 test-input pair(s)" in note and "0.91 (seeds 1 and 2)" in note
    assert "effective threshold 0.96 (configured 0.80" in note
    # A row as close to the test input as those two seeds are to each other is no leak any more...
    near = "Why was my card declined at the shop yesterday evening"  # 0.90
    rows = [row(near), row(TEST_MESSAGE.lower())]
    calibrated.apply(rows)
    assert reasons(rows) == [None, "test_leak"]  # ...but an exact copy still is
    rows = [row(near)]
    _leak([TEST_MESSAGE], seeds, calibrate=False).apply(rows)
    assert reasons(rows) == ["test_leak"]
    # The same two texts under different labels, or the configured threshold already above them: no raise.
    assert _leak([TEST_MESSAGE], [(seeds[0][0], "balance"), (seeds[1][0], "savings")]).threshold == 0.8
    assert _leak([TEST_MESSAGE], seeds, threshold=0.97).threshold == 0.97


def test_calibration_on_test_inputs_and_its_cap() -> None:
    tests = ["How do I top up my card", "How do I top up my card using my bank account", "Where is my refund"]
    calibrated = _leak(tests)
    assert calibrated.threshold == pytest.approx(14 / 18 + 0.05)
    assert "(test inputs 1 and 2)" in calibrated.notes()[0] and "3 test-input pair(s)" in calibrated.notes()[0]
    # Duplicate test inputs are not a distinct pair; near-identical ones raise it only up to the cap.
    capped = _leak(["a b c d e f g h i j k l m n o p q r s t", "a b c d e f g h i j k l m n o p q r s x",
                    "Where is my refund", "where is my refund!"])
    assert capped.threshold == 0.99
    rows = [row("A B C D E F G H I J K L M N O P Q R S T")]
    capped.apply(rows)
    assert reasons(rows) == ["test_leak"]
    # Nothing similar: the configured threshold stands, and the note says why.
    plain = _leak(["Where is my refund", "Why was my card blocked"], [("I lost my card", "card")])
    assert plain.threshold == 0.8 and "no test-input pair reaches 0.75" in plain.notes()[0]


def test_distinct_real_pairs_never_count_as_leaks_under_the_calibrated_threshold() -> None:
    seeds = [("What is my account balance", "balance"), ("What is my savings account balance", "balance"),
             ("Show my balance please", "balance"), ("How do I top up my card", "card"),
             ("How do I top up my card with cash", "card"), ("My card was declined at the shop", "card")]
    tests = ["What is the minimum age?", "What is the minimum age to open an account?",
             "How do I get a new card", "How do I get a new card pin", "Why was my card blocked",
             "why was my card blocked?"]  # the last two are one text: not a distinct pair
    leak = _leak(tests, seeds)
    words = {text: normalize_key(text).split() for text, _ in seeds}
    words.update({text: normalize_key(text).split() for text in tests})
    pairs = [(a, b) for i, (a, la) in enumerate(seeds) for b, lb in seeds[i + 1:] if la == lb]
    pairs += [(a, b) for i, a in enumerate(tests) for b in tests[i + 1:] if words[a] != words[b]]
    assert len(pairs) == 6 + 14
    for a, b in pairs:
        assert similarity(words[a], words[b]) < leak.threshold, (a, b)
    # Through the filter: seeds that resemble each other are not leaks of one another.
    for a, b in pairs[:6]:
        rows = [row(b)]
        _leak([a], seeds).apply(rows)
        assert reasons(rows) == [None], (a, b)


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



def test_target_labelled_rows_skip_the_confidence_check() -> None:
    rows = [row("a", label_probability=0.1, label_source="target"), row("b", label_probability=0.1,
                                                                        label_source="teacher"), row("c")]
    check = LabelConfidenceFilter(LabelConfidenceConfig(require=True))
    check.apply(rows)
    assert reasons(rows) == [None, "low_confidence", "low_confidence"]
    assert check.target_labelled == 1 and any("1 row(s) labelled with their generation target" in n
                                              for n in check.notes())


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
