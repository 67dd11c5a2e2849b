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
    # label_floor min_rows 1: every label keeps a row, so no soft rejection here is rescued (the
    # floor has tests of its own below).
    config = build_config({"label_balance": {"max_share": 0.5}, "length": {"max_input_tokens": 30},
                           "label_floor": {"min_rows": 1}},
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


SPEC4 = TaskSpec(name="banking4", type="classification", description=SPEC.description,
                 labels=["card", "transfer", "balance", "loan"])
CARD_TEXTS = [t for t, label in ACCEPTED_ROWS if label == "card"]  # 6
BALANCE_TEXTS = ["Show me how much is in my checking account", "Tell me the remaining funds on my savings",
                 "What is left on my current account", "How much can I still spend this month"]
TRANSFER_TEXTS = [  # (text, teacher probability): every one below min_probability 0.5
    ("Send 200 dollars to my brother overseas", 0.10), ("Set up a recurring payment to my landlord", 0.45),
    ("Wire money to my sister in Spain", 0.30), ("Move funds from checking into savings", 0.20),
    ("Pay my electricity bill from my account", 0.40), ("Transfer the deposit to the letting agent", 0.05),
    ("Send my friend the money for the concert", 0.35), ("Wire the rent to my landlord please", 0.45),
]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _each_row_once(outcome, ids: list[str]) -> tuple[list[dict], list[dict]]:
    """accepted.jsonl and rejected.jsonl hold every input row exactly once between them."""
    accepted, rejected = _lines(outcome.accepted), _lines(outcome.rejected)
    assert len(accepted) + len(rejected) == len(ids) == outcome.report["read"]
    accepted_ids = [r["id"] for r in accepted]
    rejected_ids = [r["example"]["id"] for r in rejected]
    assert sorted(accepted_ids + rejected_ids) == sorted(ids)
    assert not set(accepted_ids) & set(rejected_ids)
    return accepted, rejected


def test_label_floor_rescues_the_most_confident_rows_of_a_class_the_filters_emptied(tmp_path: Path) -> None:
    lines = [_row(t, "card", id=f"c{n}") for n, t in enumerate(CARD_TEXTS)]
    lines += [_row(t, "transfer", prob=p, id=f"t{n}") for n, (t, p) in enumerate(TRANSFER_TEXTS)]
    lines += [_row(t, "balance", id=f"b{n}") for n, t in enumerate(BALANCE_TEXTS)]
    ids = [json.loads(x)["id"] for x in lines]
    examples = _write(tmp_path / "g.jsonl", lines)
    config = build_config({"label_balance": {"enabled": False}}, {})
    outcome = validate(SPEC4, examples, tmp_path / "out", config, token_counter=WORDS)
    accepted, rejected = _each_row_once(outcome, ids)
    report = outcome.report
    # The five most confident transfer rows (0.45, 0.45, 0.40, 0.35, 0.30; ties by file order), in file order.
    rescued = [r for r in accepted if r["output"] == "transfer"]
    assert [r["id"] for r in rescued] == ["t1", "t2", "t4", "t6", "t7"]
    assert all(r["metadata"]["rescued_from"] == "low_confidence" and r["metadata"]["teacher"] == "gemma3-270m"
               for r in rescued)
    assert not any("rescued_from" in r.get("metadata", {}) for r in accepted if r["output"] != "transfer")
    assert sorted(r["example"]["id"] for r in rejected) == ["t0", "t3", "t5"]
    assert {r["reason"] for r in rejected} == {"low_confidence"}
    assert [r["id"] for r in accepted][:6] == [f"c{n}" for n in range(6)]  # file order kept
    transfer = report["labels"]["transfer"]
    assert (transfer["accepted"], transfer["rescued"], transfer["rejected_by_reason"]) == (5, 5, {"low_confidence": 3})
    assert report["rescued"] == 5 and report["rejected_by_reason"]["low_confidence"] == 3
    # Labels still short, a label without a single generated row included (it is in `labels` too).
    assert report["thin_labels"] == [{"label": "balance", "accepted": 4}, {"label": "loan", "accepted": 0}]
    assert report["labels"]["loan"] == {"read": 0, "accepted": 0, "rejected": 0, "rejected_by_reason": {},
                                        "rescued": 0}
    notes = "\n".join(report["notes"])
    assert "label_floor: 5 soft-rejected row(s) rescued" in notes
    assert "label 'loan' has 0 accepted row(s) (< label_floor.min_rows 5)" in notes
    assert "label 'balance' has 4 accepted row(s)" in notes

    # Rescue switched off: the class stays empty, and the report says so.
    off = validate(SPEC4, examples, tmp_path / "off", build_config({"label_balance": {"enabled": False},
                                                                    "label_floor": {"enabled": False}}, {}),
                   token_counter=WORDS)
    _each_row_once(off, ids)
    assert off.report["labels"]["transfer"]["accepted"] == 0 and off.report["rescued"] == 0
    assert {"label": "transfer", "accepted": 0} in off.report["thin_labels"]


def test_a_rescued_row_still_has_to_pass_the_dedup_it_skipped(tmp_path: Path) -> None:
    """low_confidence stops the chain before duplicate / near_duplicate; the rescue runs them."""
    lines = [_row(t, "card", id=f"c{n}") for n, t in enumerate(CARD_TEXTS)]
    lines += [_row("Set up a recurring payment to my landlord", "transfer", prob=0.45, id="t0"),
              _row("set up a RECURRING payment to my landlord!", "transfer", prob=0.40, id="t1"),  # duplicate of t0
              _row("My credit card got swallowed by the cash machine", "transfer", prob=0.35, id="t2"),  # of c0
              _row("Wire money to my sister in Spain", "transfer", prob=0.30, id="t3"),
              _row("Move funds from checking into savings", "transfer", prob=0.20, id="t4")]  # pushed out
    ids = [json.loads(x)["id"] for x in lines]
    config = build_config({"label_balance": {"enabled": False}, "label_floor": {"min_rows": 4}}, {})
    outcome = validate(SPEC4, _write(tmp_path / "g.jsonl", lines), tmp_path / "out", config, token_counter=WORDS)
    accepted, rejected = _each_row_once(outcome, ids)
    assert [r["id"] for r in accepted if r["output"] == "transfer"] == ["t0", "t3"]
    why = {r["example"]["id"]: (r["reason"], r["detail"]) for r in rejected}
    assert why["t1"][0] == "duplicate" and "line 7" in why["t1"][1]
    assert why["t2"][0] == "duplicate" and "line 1" in why["t2"][1]
    assert why["t4"][0] == "low_confidence"
    # The reserve held min_rows rows; two were copies, so the label stays thin.
    assert {"label": "transfer", "accepted": 2} in outcome.report["thin_labels"]


def test_label_floor_takes_back_rows_the_balance_cap_dropped(tmp_path: Path) -> None:
    probabilities = [0.9, 0.9, 0.6, 0.95, 0.7, 0.99, 0.6, 0.8, 0.55, 0.95]
    cards = CARD_TEXTS + ["My card PIN does not work at the till", "The magnetic strip on my card is damaged",
                          "My new card has not arrived yet", "The bank sent my card to the wrong address"]
    lines = [_row("Send 200 dollars to my brother overseas", "transfer", id="t0"),
             _row("Show me how much is in my checking account", "balance", id="b0")]
    lines += [_row(t, "card", prob=p, id=f"c{n}") for n, (t, p) in enumerate(zip(cards, probabilities))]
    ids = [json.loads(x)["id"] for x in lines]
    config = build_config({"label_balance": {"max_share": 0.5}}, {})  # cap: 2 rows a label
    outcome = validate(SPEC, _write(tmp_path / "g.jsonl", lines), tmp_path / "out", config, token_counter=WORDS)
    accepted, rejected = _each_row_once(outcome, ids)
    # The cap keeps the first two card rows; the floor adds the three most confident it dropped.
    assert [r["id"] for r in accepted] == ["t0", "b0", "c0", "c1", "c3", "c5", "c9"]
    assert [r["id"] for r in accepted if r.get("metadata", {}).get("rescued_from") == "label_imbalance"] == \
        ["c3", "c5", "c9"]
    assert sorted(r["example"]["id"] for r in rejected) == ["c2", "c4", "c6", "c7", "c8"]
    assert all(r["reason"] == "label_imbalance" and "cap of 2" in r["detail"] for r in rejected)
    card = outcome.report["labels"]["card"]
    assert (card["accepted"], card["rescued"], card["rejected_by_reason"]) == (5, 3, {"label_imbalance": 5})
    assert outcome.report["thin_labels"] == [{"label": "transfer", "accepted": 1}, {"label": "balance", "accepted": 1}]


def test_target_labelled_rows_pass_the_confidence_filter(tmp_path: Path) -> None:
    lines = [_row(t, "card", prob=None, id=f"c{n}", metadata={"label_probability": 0.1, "label_source": "target"})
             for n, t in enumerate(CARD_TEXTS[:5])]
    lines.append(_row(CARD_TEXTS[5], "card", prob=0.1, id="teacher"))
    config = build_config({"label_floor": {"enabled": False}, "label_balance": {"enabled": False}}, {})
    outcome = validate(SPEC, _write(tmp_path / "g.jsonl", lines), tmp_path / "out", config, token_counter=WORDS)
    assert [r["id"] for r in _lines(outcome.accepted)] == [f"c{n}" for n in range(5)]
    assert [r["example"]["id"] for r in _lines(outcome.rejected)] == ["teacher"]
    assert any("5 row(s) labelled with their generation target" in note for note in outcome.report["notes"])
