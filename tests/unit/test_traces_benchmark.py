"""The traces benchmark's arms: the raw arm trains on every answered trace as it is (duplicates
once and test rows left out, answers that are not labels left out and counted), the ours arm gets the answered traces as
logged request/response pairs, the old answers' accuracy is taken from the articles' categories,
and ours − raw pairs the same training seed on the same test rows."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import traces as bench
from services.common.taskspec import load_task
from services.common.traces import read_traces


def _trace(text: str, source: str, answer: str) -> dict:
    request = {"model": "tagger-v1", "messages": [{"role": "system", "content": "Tag the article."},
                                                  {"role": "user", "content": text}]}
    return {"request": request, "source": source,
            "response": {"model": "gemma3-270m", "choices": [{"message": {"role": "assistant", "content": answer}}]}}


def test_arms_from_answered_traces(tmp_path: Path) -> None:
    answered = [_trace("Shares fell after the earnings call.", "bbcnews/business/001.txt", "business"),
                _trace("Shares fell after the earnings call.", "bbcnews/business/001.txt", "business"),
                _trace("The striker scored twice.", "bbcnews/sport/002.txt", "politics"),
                _trace("A new phone chip.", "bbcnews/tech/003.txt", "gadgets")]
    test_row = json.loads((bench.TASK / "test.jsonl").read_text().splitlines()[5])
    answered.append(_trace(test_row["input"], "bbcnews/sport/999.txt", "sport"))
    answered += [_trace(f"Film number {i} wins an award.", f"bbcnews/entertainment/{i:03d}.txt", "entertainment")
                 for i in range(10)]
    ours, raw, summary = bench.write_arms(tmp_path, answered)

    assert summary["traces"] == 15 and summary["with_valid_answer"] == 14 and summary["distinct_inputs"] == 14
    assert summary["old_answer_accuracy"] == pytest.approx(13 / 14, abs=1e-4)
    assert summary["old_answer_labels"]["business"] == 2 and summary["old_answer_labels"]["politics"] == 1
    seeds = [json.loads(line) for line in (raw / "seeds.jsonl").read_text().splitlines()]
    assert summary["raw_rows"] == 12  # the duplicate once, the test row left out
    assert summary["raw_left_out"] == {"duplicates": 1, "test_rows": 1}
    assert seeds[:2] == [{"input": "Shares fell after the earnings call.", "output": "business"},
                         {"input": "The striker scored twice.", "output": "politics"}]
    raw_bundle, ours_bundle = load_task(raw), load_task(ours)
    assert raw_bundle.spec.name == "news-topic-raw-traces" and len(raw_bundle.seeds) == 12
    assert ours_bundle.spec.name == "news-topic-traces-answered"
    assert (ours / "test.jsonl").read_bytes() == (bench.TASK / "test.jsonl").read_bytes()
    parsed = read_traces(ours_bundle.spec, ours / "traces.jsonl")
    assert [t.answer for t in parsed][:4] == ["business", "business", "politics", None]


def test_seeded_arms_add_the_gold_seeds(tmp_path: Path) -> None:
    answered = [_trace(f"Story number {i} about a match.", f"bbcnews/sport/{i:03d}.txt", "business") for i in range(12)]
    gold = [json.loads(line) for line in bench.GOLD_SEEDS.read_text().splitlines()]
    answered.append(_trace(gold[0]["input"], "bbcnews/x/1.txt", "tech"))  # a trace that is a gold seed
    ours, raw, _ = bench.write_arms(tmp_path, answered)
    seeded_ours, seeded_raw = bench.write_seeded_arms(tmp_path, ours, raw)

    ours_bundle, raw_bundle = load_task(seeded_ours), load_task(seeded_raw)
    assert ours_bundle.spec.name == "news-topic-traces-seeds" and raw_bundle.spec.name == "news-topic-raw-traces-seeds"
    assert [s.input for s in ours_bundle.seeds] == [g["input"] for g in gold]
    assert (seeded_ours / "traces.jsonl").read_bytes() == (ours / "traces.jsonl").read_bytes()
    # the gold seeds first, with their own labels; the trace that copies one is not repeated
    assert len(raw_bundle.seeds) == len(gold) + 12
    assert [(s.input, s.output) for s in raw_bundle.seeds[:len(gold)]] == [(g["input"], g["output"]) for g in gold]


def test_compare_arms_pairs_training_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    scores = {"ours-0": [1, 1, 1, 0], "raw-0": [1, 0, 0, 0], "ours-1": [1, 1, 0, 0], "raw-1": [1, 1, 0, 0]}

    def rows(uri: str) -> list[dict]:
        name = "student" if uri.startswith("ours") else "seed-only-student"
        return [{"candidate": name, "index": i, "score": float(s)} for i, s in enumerate(scores[uri])]

    monkeypatch.setattr(bench, "read_predictions", rows)
    ours = {"primary_metric": "accuracy", "runs": [{"training_seed": 0, "predictions": "ours-0"},
                                                   {"training_seed": 1, "predictions": "ours-1"}]}
    raw = {"runs": [{"training_seed": 1, "predictions": "raw-1"}, {"training_seed": 0, "predictions": "raw-0"},
                    {"training_seed": 2, "predictions": "raw-0"}]}
    comparison = bench.compare_arms(ours, raw)
    assert comparison["runs"] == 2 and comparison["n"] == 4
    assert comparison["ours"] == [0.75, 0.5] and comparison["raw"] == [0.25, 0.5]
    assert comparison["delta"] == pytest.approx(0.25)
    assert comparison["low"] <= comparison["delta"] <= comparison["high"]
    assert bench.compare_arms({**ours, "runs": []}, raw) is None
