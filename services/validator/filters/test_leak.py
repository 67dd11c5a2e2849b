"""Test-set leakage: a generated input that overlaps a held-out test input is dropped, or the
student would be trained on the exam. Overlap is n-gram containment over normalised words: the
share of the shorter text's word n-grams that also occur in the other text (1.0 when one input
contains the other). An input shorter than n words counts as one gram of all its words, so a short test input leaks
only into an equal short input (exact-match leakage).
Only test inputs are read; their outputs are never looked at."""

from __future__ import annotations

from collections import defaultdict

from services.validator.config import TestLeakConfig
from services.validator.row import Row


def word_ngrams(key: str, n: int) -> set[tuple[str, ...]]:
    words = key.split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class TestLeakFilter:
    reason = "test_leak"

    def __init__(self, config: TestLeakConfig, test_keys: list[str]) -> None:
        self.config = config
        self.sizes: list[int] = []
        self.index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for number, key in enumerate(test_keys):
            grams = word_ngrams(key, config.ngram)
            self.sizes.append(len(grams))
            for gram in grams:
                self.index[gram].append(number)
        self.index = dict(self.index)

    def apply(self, rows: list[Row]) -> None:
        if not self.sizes:
            return
        n, threshold = self.config.ngram, self.config.threshold
        for row in rows:
            grams = word_ngrams(row.key, n)
            if not grams:
                continue
            shared: dict[int, int] = defaultdict(int)
            for gram in grams:
                for number in self.index.get(gram, ()):
                    shared[number] += 1
            best, best_score = -1, 0.0
            for number in sorted(shared):
                score = shared[number] / min(len(grams), self.sizes[number])
                if score > best_score:
                    best, best_score = number, score
            if best >= 0 and best_score >= threshold:
                row.reject(self.reason, f"input overlaps test example {best + 1} ({n}-gram overlap "
                           f"{best_score:.2f} >= {threshold})")

    def notes(self) -> list[str]:
        return [] if self.sizes else ["test_leak: no test set given; leakage was not checked"]
