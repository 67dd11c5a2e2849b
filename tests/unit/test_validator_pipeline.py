"""The filter chain end to end on crafted data: every reason code fires, with exact counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.common.taskspec import TaskSpec, Tool
from services.validator.config import build_config
from services.validator.filters.length import TokenCounter
from services.validator.pipeline import validate
from services.validator.row import REASON_CODES

WORDS = TokenCounter(None, "whitespace")

SPEC = TaskSpec(
    name="banking", type="classification",
    description="Classify banking customer support messages by intent: card problems, money transfers, "
                "account balance questions.",
    labels=["card", "transfer", "balance"],
    label_descriptions={"card": "debit or credit card problems", "transfer": "sending money",
                        "balance": "how much money is in an account"})

SEEDS = [
    ("My card was declined at the shop", "card"),
    ("I lost my debit card on the bus", "card"),
    ("How do I send money to my friend", "transfer"),
    ("Transfer 50 euros to my savings account", "transfer"),
    ("What is my account balance right now", "balance"),
    ("How much money do I have left this month", "balance"),
]
TEST = ["Why was my card blocked yesterday evening", "Can I cancel a transfer I made by mistake"]

ACCEPTED_ROWS = [
    # 6 card, 2 transfer, 2 balance survive the per-row filters; label_balance (max_share 0.5)
    # then keeps 4 card rows: cap k with k <= 0.5 * (k + 4).
    ("My credit card got swallowed by the cash machine", "card"),
    ("The chip on my card stopped working", "card"),
    ("Someone used my card without permission for a purchase", "card"),
    ("Please send me a replacement for my expired card", "card"),
    ("My contactless card payments keep failing", "card"),
    ("I want to freeze my stolen credit card immediately", "card"),
    ("Send 200 dollars to my brother overseas", "transfer"),
    ("Set up a recurring payment to my landlord every month", "transfer"),
    ("Show me how much is in my checking account", "balance"),
    ("Tell me the remaining funds on my savings", "balance"),
]


def _write(path: Path, lines: list[str], trailing_newline: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")
    return path


def _row(text: str, label: str, prob: float | None = 0.9, **extra) -> str:
    row = {"input": text, "output": label, **extra}
    if prob is not None:
        row["metadata"] = {"label_probability": prob, "teacher": "gemma3-270m"}
    return json.dumps(row)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("crafted")
    seeds = _write(root / "seeds.jsonl", [json.dumps({"input": i, "output": o}) for i, o in SEEDS])
    test = _write(root / "test.jsonl", [json.dumps({"input": t, "output": "card"}) for t in TEST])
    lines = [_row(t, lab, id=f"ok{n}") for n, (t, lab) in enumerate(ACCEPTED_ROWS)]
    expected = {
        "malformed": 4, "format": 2, "too_long": 1, "duplicate": 2, "near_duplicate": 1, "test_leak": 1,
        "off_topic": 1, "label_imbalance": 2, "low_confidence": 2, "disagreement": 1, "judge_rejected": 1,
        "ungrounded": 0,  # not applicable to classification: see tests/unit/test_validator_grounded.py
    }
    lines += [
        '{"input": "broken json',                                        # malformed
        '["a list", "not an object"]',                                  # malformed
        json.dumps({"input": "my card is bent"}),                        # malformed: no output
        _row("My card got wet in the rain", "cards"),                   # format: not a label
        json.dumps({"input": "", "output": "card"}),                   # format: empty input
        _row(" ".join(["my card balance transfer"] * 10), "card"),     # too_long: 40 words > 30
        _row("MY CREDIT CARD got swallowed by the cash-machine!!", "card"),  # duplicate of ok0
        _row("my card was declined at the shop.", "card"),             # duplicate of seed 1
        _row("Someone used my card without permission for a purchases", "card"),  # near dup of ok2
        _row("why was my card blocked yesterday evening at the mall", "card"),  # test_leak
        _row("zebra xylophone quartz nebula", "balance"),              # off_topic
        _row("My card PIN is not accepted anymore", "card", prob=0.2),  # low_confidence
        _row("Move some money between my accounts", "transfer", prob=None,
             metadata={"choice_probabilities": {"transfer": 0.3, "balance": 0.7}}),  # low_confidence
        _row("Wire the rent to my landlord please", "balance", id="disagree1"),  # disagreement
        _row("Could you lend me a card for the weekend", "card"),      # judge_rejected ("lend")
    ]
    lines.append('{"input": "torn last line')                            # malformed, no newline
    examples = _write(root / "generated.jsonl", lines, trailing_newline=False)
    predictions = _write(root / "predictions.jsonl", [json.dumps({"id": "disagree1", "output": "transfer"}),
                                                      json.dumps({"id": "ok6", "output": "transfer"})])
    config = build_config({"label_balance": {"max_share": 0.5}, "length": {"max_input_tokens": 30}},
                          {"agreement": {"enabled": True, "predictions": str(predictions)},
                           "judge": {"enabled": True, "batch_size": 4}})
    graded: list[str] = []

    def grader(prompts: list[str]) -> list[float]:
        graded.extend(prompts)
        return [0.1 if "lend" in p else 0.95 for p in prompts]

    outcome = validate(SPEC, examples, root / "out", config, seeds=seeds, test=test, token_counter=WORDS,
                       grader=grader)
    return {"outcome": outcome, "expected": expected, "lines": len(lines), "graded": graded, "root": root,
            "args": (examples, config, seeds, test, grader)}


def test_every_reason_code_fires_with_exact_counts(crafted: dict) -> None:
    report = crafted["outcome"].report
    assert set(report["rejected_by_reason"]) == set(REASON_CODES)
    assert report["rejected_by_reason"] == crafted["expected"]
    assert report["read"] == crafted["lines"]
    assert report["accepted"] == len(ACCEPTED_ROWS) - 2
    assert report["accepted"] + report["rejected"] == report["read"]


def test_outputs_match_the_report(crafted: dict) -> None:
    outcome = crafted["outcome"]
    accepted = [json.loads(x) for x in outcome.accepted.read_text().splitlines()]
    rejected = [json.loads(x) for x in outcome.rejected.read_text().splitlines()]
    assert len(accepted) == outcome.report["accepted"] and len(rejected) == outcome.report["rejected"]
    assert [r["id"] for r in accepted] == ["ok0", "ok1", "ok2", "ok3", "ok6", "ok7", "ok8", "ok9"]
    assert all(set(r) >= {"line", "reason", "detail"} and r["detail"] for r in rejected)
    malformed = sorted(r["line"] for r in rejected if r["reason"] == "malformed")
    assert malformed == [11, 12, 13, crafted["lines"]]  # line numbers of the bad lines, the torn tail too
    imbalance = [r["example"]["id"] for r in rejected if r["reason"] == "label_imbalance"]
    assert imbalance == ["ok4", "ok5"]  # first rows of the label are kept, later ones dropped
    dup = [r for r in rejected if r["reason"] == "duplicate"]
    assert "line 1" in dup[0]["detail"] and "seed 1" in dup[1]["detail"]
    assert {"report.json", "accepted.jsonl", "rejected.jsonl"} <= {p.name for p in outcome.accepted.parent.iterdir()}
    assert not list(outcome.accepted.parent.glob("*.tmp"))


def test_per_label_counts_add_up(crafted: dict) -> None:
    report = crafted["outcome"].report
    labels = report["labels"]
    assert labels["card"]["accepted"] == 4 and labels["card"]["rejected_by_reason"]["label_imbalance"] == 2
    assert labels["cards"]["rejected_by_reason"] == {"format": 1}
    assert sum(v["read"] for v in labels.values()) == report["read"]
    assert sum(v["accepted"] for v in labels.values()) == report["accepted"]
    for counts in labels.values():
        assert counts["accepted"] + sum(counts["rejected_by_reason"].values()) == counts["read"]


def test_judge_sees_only_survivors_of_the_cheap_filters(crafted: dict) -> None:
    assert len(crafted["graded"]) == len(ACCEPTED_ROWS) + 1  # + the one it rejects
    assert "Banking" not in crafted["graded"][0] and "Input: My credit card got swallowed" in crafted["graded"][0]


def test_deterministic(crafted: dict, tmp_path: Path) -> None:
    examples, config, seeds, test, grader = crafted["args"]
    again = validate(SPEC, examples, tmp_path / "again", config, seeds=seeds, test=test, token_counter=WORDS,
                     grader=grader)
    first = crafted["outcome"]
    assert again.accepted.read_bytes() == first.accepted.read_bytes()
    assert again.rejected.read_bytes() == first.rejected.read_bytes()


def test_judge_enabled_without_a_grader_is_an_invalid_argument(tmp_path: Path) -> None:
    examples = _write(tmp_path / "g.jsonl", [_row("My card broke", "card")])
    with pytest.raises(InvalidArgument, match="judge"):
        validate(SPEC, examples, tmp_path / "out", build_config({}, {"judge": {"enabled": True}}), token_counter=WORDS)


def test_only_malformed_and_blank_lines(tmp_path: Path) -> None:
    examples = tmp_path / "g.jsonl"
    examples.write_bytes(b"\n\xff\xfe not utf8\n\n42\n")
    outcome = validate(SPEC, examples, tmp_path / "out", build_config({}, {}), token_counter=WORDS)
    assert outcome.report["read"] == 2 and outcome.report["rejected_by_reason"]["malformed"] == 2
    rejected = [json.loads(x) for x in outcome.rejected.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2, 4]
    assert outcome.accepted.read_text() == ""


def test_extraction_and_tool_calling_formats(tmp_path: Path) -> None:
    extraction = TaskSpec(name="x", type="extraction", description="Extract the person's name and age from text.",
                          output_schema={"type": "object", "required": ["name", "age"],
                                         "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}})
    rows = [json.dumps({"input": "Anna is 31 years old", "output": {"name": "Anna", "age": 31}}),
            json.dumps({"input": "Bob is forty years old", "output": '{"name": "Bob", "age": "forty"}'}),
            json.dumps({"input": "Carl, aged 50", "output": "{not json"})]
    out = validate(extraction, _write(tmp_path / "e.jsonl", rows), tmp_path / "e", build_config({}, {}),
                   token_counter=WORDS)
    assert (out.report["accepted"], out.report["rejected_by_reason"]["format"]) == (1, 2)
    assert json.loads(out.accepted.read_text())["output"] == '{"name":"Anna","age":31}'

    weather = Tool("get_weather", "Weather for a city", {
        "type": "object", "required": ["city"],
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}}})
    tools = TaskSpec(name="t", type="tool-calling", description="Call weather tools for weather questions.",
                     tools=[weather], allow_no_call=False)
    calls = [
        ("What's the weather in Paris", [{"name": "get_weather", "arguments": {"city": "Paris"}}]),   # ok
        ("Weather in Rome in kelvin", [{"name": "get_weather", "arguments": {"city": "Rome", "unit": "K"}}]),
        ("Weather in Oslo please", [{"name": "get_weather", "arguments": {}}]),                     # required
        ("Book me a flight to Lima", [{"name": "book_flight", "arguments": {"to": "Lima"}}]),       # no tool
        ("Tell me a weather joke", []),                                                             # no call
    ]
    rows = [json.dumps({"input": i, "output": json.dumps(o)}) for i, o in calls]
    out = validate(tools, _write(tmp_path / "t.jsonl", rows), tmp_path / "t", build_config({}, {}),
                   token_counter=WORDS)
    assert (out.report["accepted"], out.report["rejected_by_reason"]["format"]) == (1, 4)
    assert out.report["labels"]["get_weather"]["accepted"] == 1
