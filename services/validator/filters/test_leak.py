"""Test-set leakage: a generated input that is a copy or a near copy of a held-out test input is
dropped, or the student would be trained on the exam. Only test *inputs* are read; their outputs
are never looked at.

Similarity. Two inputs are compared as sequences of normalised words (case, punctuation and
whitespace folded) with the word-level ROUGE-L F1:

    sim(a, b) = 2 · LCS(a, b) / (|a| + |b|)        (1.0 exactly when the normalised texts are equal)

where LCS is the longest common subsequence of words. Why this and not the n-gram containment over
the *shorter* text it replaces: containment called a long text a leak of a short test message as
soon as it repeated the message's phrase ("What is the minimum amount of money I can pay with
American Express?" contains two of the three 3-grams of "What is the minimum age?": 0.67). This one
is symmetric and counts both lengths, so such a text scores 2·4 / (13 + 5) = 0.44, while what a
leak looks like scores high: an exact copy 1.0; one word changed in an n-word copy costs only 1/n
(n-gram scores lose up to n grams per changed word: a 10-word copy with two words changed keeps 2
of its 8 word 3-grams); the test text with k extra words around it scores 2n / (2n + k). Word order
counts (an LCS, not a bag of words).

Calibration. How close may a legitimate paraphrase get to a test input? As close as two distinct
real examples of the task get to each other. So the threshold is raised to just above the most
similar pair of distinct real examples: pairs of seed inputs of the same class (classification:
the same output label; other tasks: any two seeds) and pairs of test inputs (never their outputs):
effective threshold = max(threshold, highest real-pair similarity + ``MARGIN``), the raise capped at
``MAX_CALIBRATED`` so that an exact copy (1.0) always leaks. A pair is distinct when the normalised
texts differ. Test pairs that score below ``threshold - MARGIN`` cannot raise it and are pruned
rather than scored (below).

Speed. LCS lengths are computed bit-parallel (Allison–Dix / Hyyrö: one big-int step per word of
the longer text). Candidates come from prefix filtering: LCS ≤ the words two texts share (as a
multiset), and reaching similarity t needs a text of |x| words to share at least
⌈t·|x| / (2 − t)⌉ of them with any partner; then, with words ordered rarest first (document
frequency in the test set), the two texts must share a word among the first |x| − that + 1 of each.
Only test inputs sharing such a word are scored, so common words ("the", "my") cost nothing."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from services.validator.config import TestLeakConfig
from services.validator.row import Row

# How far above the most similar pair of distinct real examples the threshold is set.
MARGIN = 0.05
# The calibrated threshold never goes above this, so that exact copies (1.0) always leak.
MAX_CALIBRATED = 0.99

Token = tuple[str, int]  # (word, its occurrence number in the text): a multiset as a set


def _masks(words: Sequence[str]) -> dict[str, int]:
    """word → the bit set of its positions: the match vectors of the bit-parallel LCS."""
    masks: dict[str, int] = {}
    for position, word in enumerate(words):
        masks[word] = masks.get(word, 0) | (1 << position)
    return masks


def _lcs_with_masks(a: Sequence[str], masks: dict[str, int], length: int) -> int:
    """LCS of ``a`` and the text of ``length`` words whose ``_masks`` these are (Hyyrö's recurrence)."""
    full = (1 << length) - 1
    v = full
    for word in a:
        mask = masks.get(word)
        if mask:
            u = v & mask
            v = ((v + u) | (v - u)) & full
    return length - v.bit_count()


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two word sequences (bit-parallel)."""
    if len(a) < len(b):
        a, b = b, a
    return _lcs_with_masks(a, _masks(b), len(b)) if b else 0


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """2 · LCS / (|a| + |b|) over words; 0.0 for two empty texts."""
    total = len(a) + len(b)
    return 2.0 * lcs_length(a, b) / total if total else 0.0


def _min_shared(length: int, threshold: float) -> int:
    """Fewest words a text of ``length`` words must share with any partner to reach ``threshold``."""
    if threshold >= 2.0:  # pragma: no cover - thresholds are checked to lie in [0, 1]
        return length
    return max(1, math.ceil(threshold * length / (2.0 - threshold) - 1e-9))


def _tokens(words: Sequence[str]) -> list[Token]:
    seen: dict[str, int] = {}
    tokens: list[Token] = []
    for word in words:
        occurrence = seen.get(word, 0)
        seen[word] = occurrence + 1
        tokens.append((word, occurrence))
    return tokens


class _PrefixIndex:
    """Texts indexed by the prefixes of their rarest words (prefix filtering, see the docstring).

    Built for ``threshold``; it answers queries for that threshold or any higher one. Before a
    candidate's LCS is computed, two cheaper bounds must allow the threshold: the lengths
    (LCS ≤ the shorter text) and the words shared as a multiset (LCS ≤ that count)."""

    def __init__(self, texts: list[list[str]], threshold: float) -> None:
        self.texts = texts
        self.threshold = threshold
        self.df: Counter = Counter(word for words in texts for word in set(words))
        self.token_sets = [frozenset(_tokens(words)) for words in texts]
        self.masks = [_masks(words) for words in texts]
        self.lengths = [len(words) for words in texts]
        postings: dict[Token, list[int]] = defaultdict(list)
        for number, words in enumerate(texts):
            for token in self.prefix(words, threshold):
                postings[token].append(number)
        self.postings = dict(postings)

    def prefix(self, words: list[str], threshold: float, tokens: list[Token] | None = None) -> list[Token]:
        """The rarest len(words) - _min_shared + 1 tokens (``tokens``: _tokens(words), if at hand)."""
        df = self.df
        ordered = sorted(_tokens(words) if tokens is None else tokens, key=lambda token: (df.get(token[0], 0), token))
        return ordered[:max(1, len(words) - _min_shared(len(words), threshold) + 1)]

    def matches(self, words: list[str], threshold: float) -> Iterator[tuple[int, float]]:
        """(number, similarity) of every indexed text with similarity >= threshold (and > 0), by number."""
        if not words:
            return
        threshold = max(threshold, self.threshold)
        postings = self.postings
        tagged = _tokens(words)
        candidates: set[int] = set()
        for token in self.prefix(words, threshold, tagged):
            hit = postings.get(token)
            if hit:
                candidates.update(hit)
        if not candidates:
            return
        size, lengths, token_sets = len(words), self.lengths, self.token_sets
        tokens = frozenset(tagged)
        # LCS >= threshold * (size + length) / 2 is needed; LCS <= min(size, length) bounds the length.
        half = threshold / 2.0
        shortest = threshold * size / (2.0 - threshold) - 1e-9
        longest = (2.0 - threshold) * size / threshold + 1e-9 if threshold > 0 else float("inf")
        for number in sorted(candidates):  # sorted: ties resolve the same way every run
            length = lengths[number]
            if length < shortest or length > longest:
                continue
            needed = half * (size + length) - 1e-9
            if len(tokens & token_sets[number]) < needed:
                continue
            score = 2.0 * _lcs_with_masks(words, self.masks[number], length) / (size + length)
            if score > 0 and score >= threshold - 1e-12:
                yield number, score


@dataclass
class Calibration:
    """What the threshold was calibrated on, for the report."""

    seed_pairs: int = 0
    test_pairs: int = 0
    # The highest similarity found among distinct real pairs (seed pairs: all scored; test pairs:
    # those at or above ``probe``), and which pair it was.
    highest: float | None = None
    where: str = ""
    probe: float = 0.0
    threshold: float = 0.0


def calibrate(threshold: float, seeds: list[tuple[list[str], str]], test: list[list[str]],
              index: _PrefixIndex | None) -> Calibration:
    """The effective threshold: above every pair of distinct real examples (see the docstring).
    ``seeds``: (words, class) — pairs are formed within a class; ``index``: the test inputs' index,
    built for a threshold no higher than ``threshold - MARGIN``."""
    result = Calibration(probe=max(0.0, threshold - MARGIN))
    groups: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
    for number, (words, group) in enumerate(seeds, start=1):
        if words:
            groups[group].append((number, words))
    for members in groups.values():  # tens of seeds: every pair is scored
        for i, (first, a) in enumerate(members):
            for second, b in members[i + 1:]:
                if a == b:
                    continue
                result.seed_pairs += 1
                score = similarity(a, b)
                if result.highest is None or score > result.highest:
                    result.highest, result.where = score, f"seeds {first} and {second}"
    distinct = Counter(" ".join(words) for words in test if words)
    result.test_pairs = (sum(distinct.values()) * (sum(distinct.values()) - 1) // 2
                         - sum(c * (c - 1) // 2 for c in distinct.values()))
    if index is not None:
        for number, words in enumerate(test):
            for other, score in index.matches(words, result.probe):
                if other >= number:
                    break  # each pair once; matches come by number
                if index.texts[other] == words:
                    continue
                if result.highest is None or score > result.highest:
                    result.highest, result.where = score, f"test inputs {other + 1} and {number + 1}"
    raised = min(MAX_CALIBRATED, result.highest + MARGIN) if result.highest is not None else 0.0
    result.threshold = max(threshold, raised)
    return result


class TestLeakFilter:
    reason = "test_leak"

    def __init__(self, config: TestLeakConfig, test_keys: list[str],
                 seeds: list[tuple[str, str]] | None = None) -> None:
        """``test_keys``: normalised test inputs; ``seeds``: (normalised seed input, class) for the
        calibration — the class is the output label for classification, one shared value otherwise."""
        self.config = config
        texts = [key.split() for key in test_keys]
        self.calibration: Calibration | None = None
        self.threshold = config.threshold
        self.index: _PrefixIndex | None = None
        if not any(texts):
            return
        if config.calibrate:
            self.index = _PrefixIndex(texts, max(0.0, config.threshold - MARGIN))
            self.calibration = calibrate(config.threshold, [(key.split(), group) for key, group in seeds or []],
                                         texts, self.index)
            self.threshold = self.calibration.threshold
        if self.index is None or self.index.threshold != self.threshold:
            self.index = _PrefixIndex(texts, self.threshold)  # shorter prefixes: fewer candidates

    def apply(self, rows: list[Row]) -> None:
        if self.index is None:
            return
        threshold = self.threshold
        for row in rows:
            best, best_score = -1, 0.0
            for number, score in self.index.matches(row.key.split(), threshold):
                if score > best_score:
                    best, best_score = number, score
            if best >= 0:
                row.reject(self.reason, f"input is a near copy of test example {best + 1} (word similarity "
                           f"{best_score:.2f} >= {threshold:.2f})")

    def notes(self) -> list[str]:
        if self.index is None:
            return ["test_leak: no test set given; leakage was not checked"]
        found = self.calibration
        if found is None:
            return [f"test_leak: threshold {self.threshold:.2f} (calibration off)"]
        pairs = (f"calibrated on {found.seed_pairs} seed-input pair(s) and {found.test_pairs} test-input pair(s) "
                 "of distinct examples")
        if found.highest is not None and found.highest >= found.probe:  # nothing higher was pruned
            highest = f"highest real-pair similarity {found.highest:.2f} ({found.where})"
        elif found.highest is not None:
            highest = (f"highest real-pair similarity {found.highest:.2f} ({found.where}); no test-input pair "
                       f"reaches {found.probe:.2f}")
        else:
            highest = f"no test-input pair reaches {found.probe:.2f}"
        if found.threshold > self.config.threshold:
            outcome = (f"effective threshold {found.threshold:.2f} (configured {self.config.threshold:.2f}, "
                       f"margin {MARGIN})")
        else:
            outcome = f"effective threshold {found.threshold:.2f} = configured"
        return [f"test_leak: {pairs}; {highest}; {outcome}"]
