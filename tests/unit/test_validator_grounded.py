"""The grounded filter (reason ``ungrounded``): output text copied from the source must occur in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.common.taskspec import TaskSpec, check_output
from services.validator.config import GroundedConfig, build_config
from services.validator.filters.grounded import GroundedFilter, normalize
from services.validator.filters.length import TokenCounter
from services.validator.pipeline import validate
from services.validator.row import Row
from tests.helpers.tasks import CONLL

OPEN_BOOK = TaskSpec(name="qa", type="qa-open-book", description="Answer from the passage.")
CLOSED_BOOK = TaskSpec(name="qa", type="qa-closed-book", description="Answer the question.")
CLASSIFY = TaskSpec(name="t", type="classification", description="Intent.", labels=["card", "transfer"])

HALLUCINATED = "The club will pay the fine and the player will not be restricted for the rest of the season ."


def row(spec: TaskSpec, text: str, output, context: str = "", line: int = 1) -> Row:
    return Row(line=line, id=f"r{line}", input=text, raw_output=output, output=check_output(spec, output),
               context=context)


def entities(*pairs: tuple[str, str]) -> dict:
    return {"entities": [{"text": text, "type": kind} for text, kind in pairs]}


def run(spec: TaskSpec, rows: list[Row], **settings) -> GroundedFilter:
    check = GroundedFilter(spec, GroundedConfig(enabled=True, **settings))
    check.apply(rows)
    return check


def test_grounded_entity_kept_and_hallucinated_entity_rejected_with_its_field() -> None:
    rows = [row(CONLL, "Germany 's representative to the European Union 's veterinary committee",
                entities(("Germany", "LOC"), ("European Union", "ORG")), line=1),
            row(CONLL, HALLUCINATED, entities(("Zimbabwe Open", "MISC")), line=2),
            row(CONLL, "Nothing to see here .", {"entities": []}, line=3)]
    run(CONLL, rows)
    assert [r.reason for r in rows] == [None, "ungrounded", None]
    assert rows[1].detail == 'output field entities[0].text "Zimbabwe Open" does not occur in the input'


def test_only_the_first_missing_field_is_quoted_and_the_rest_counted() -> None:
    rows = [row(CONLL, "Peter Blackburn reports from Brussels .",
                entities(("Peter Blackburn", "PER"), ("Paris", "LOC"), ("Reuters", "ORG")))]
    run(CONLL, rows)
    assert rows[0].detail == 'output field entities[1].text "Paris" does not occur in the input (and 1 more)'


def test_tokenised_punctuation_spacing_case_and_unicode_match() -> None:
    text = "Leeds 's manager said ( U.S. ) officials met in ZÜRICH ."
    rows = [row(CONLL, text, entities(("Leeds's", "ORG"), ("(U.S.)", "LOC"), ("Zürich", "LOC"))),
            row(CONLL, "Ｔｏｋｙｏ  stocks fell", entities(("Tokyo", "LOC")))]  # full-width → NFKC
    run(CONLL, rows)
    assert [r.reason for r in rows] == [None, None]
    assert normalize("( U.S. )") == normalize("(u.s.)") == "(u.s.)"
    assert normalize("Leeds", case_sensitive=True) != normalize("leeds", case_sensitive=True)


def test_case_sensitive_option() -> None:
    rows = [row(CONLL, "shares in bayer rose", entities(("Bayer", "ORG")))]
    run(CONLL, rows)
    assert rows[0].reason is None
    rows = [row(CONLL, "shares in bayer rose", entities(("Bayer", "ORG")))]
    run(CONLL, rows, case_sensitive=True)
    assert rows[0].reason == "ungrounded" and '"Bayer"' in rows[0].detail


def test_enum_leaves_are_ignored_and_unresolved_leaves_are_free_text() -> None:
    # "MISC" never occurs in the sentence: the enum leaf "type" is a label, not a copy.
    rows = [row(CONLL, "Rugby union : Wales beat Fiji .", entities(("Wales", "MISC")))]
    run(CONLL, rows)
    assert rows[0].reason is None
    spec = TaskSpec(name="e", type="extraction", description="d",
                    output_schema={"type": "object", "properties": {"kind": {"const": "event"}}})
    rows = [row(spec, "The match was played in Leeds .", {"kind": "event", "where": "Leeds", "who": "Ajax"})]
    run(spec, rows)  # "where"/"who" have no schema node: free text; "kind" is const: skipped
    assert rows[0].detail == 'output field who "Ajax" does not occur in the input'


def test_explicit_fields_select_what_is_checked() -> None:
    spec = TaskSpec(name="e", type="extraction", description="d",
                    output_schema={"type": "object", "properties": {
                        "date": {"type": "string"}, "people": {"type": "array", "items": {"type": "string"}}}})
    text = "On 3 May 1996 Clinton met Yeltsin ."
    ok = {"date": "1996-05-03", "people": ["Clinton", "Yeltsin"]}  # an ISO date: normalised, not copied
    bad = {"date": "1996-05-03", "people": ["Clinton", "Kohl"]}
    rows = [row(spec, text, ok, line=1), row(spec, text, bad, line=2)]
    run(spec, rows, fields=["people"])
    assert [r.reason for r in rows] == [None, "ungrounded"]
    assert rows[1].detail == 'output field people[1] "Kohl" does not occur in the input'
    rows = [row(spec, text, ok)]
    run(spec, rows)  # no fields: every free-text leaf, and the date is not in the input
    assert rows[0].detail == 'output field date "1996-05-03" does not occur in the input'
    rows = [row(CONLL, HALLUCINATED, entities(("Zimbabwe Open", "MISC")))]
    run(CONLL, rows, fields=["entities.text"])
    assert rows[0].detail.startswith("output field entities[0].text")


def test_extraction_with_a_context_checks_input_or_context_and_explicit_sources() -> None:
    output = entities(("Ajax", "ORG"), ("Leeds", "LOC"))
    rows = [row(CONLL, "Ajax won .", output, context="They played in Leeds .")]
    run(CONLL, rows)  # auto: input and context both exist → either one
    assert rows[0].reason is None
    rows = [row(CONLL, "Ajax won .", output, context="They played in Leeds .")]
    run(CONLL, rows, source="input")
    assert rows[0].detail == 'output field entities[1].text "Leeds" does not occur in the input'
    rows = [row(CONLL, "Ajax won .", output)]
    run(CONLL, rows, source="both")
    assert rows[0].detail == 'output field entities[1].text "Leeds" does not occur in the input'
    rows = [row(CONLL, "Ajax won .", output, context="x")]
    run(CONLL, rows, source="both")
    assert rows[0].detail.endswith("does not occur in the input or the context")
    rows = [row(CONLL, "Ajax won .", output)]
    check = run(CONLL, rows, source="context")  # no context in this row: not checked, and noted
    assert rows[0].reason is None and "1 row(s) had no source text" in check.notes()[0]


def test_qa_open_book_answer_checked_against_the_context() -> None:
    passage = "The Seine flows through Paris before reaching the English Channel at Le Havre."
    rows = [row(OPEN_BOOK, "Where does the Seine reach the sea?", "at Le  Havre", context=passage, line=1),
            row(OPEN_BOOK, "Which river flows through Paris?", "The Loire", context=passage, line=2),
            row(OPEN_BOOK, "Which river flows through Paris?", "Which river", context=passage, line=3)]
    check = run(OPEN_BOOK, rows, fields=["ignored"])
    # auto for open-book is the passage alone: copying the question is not an answer from it.
    assert [r.reason for r in rows] == [None, "ungrounded", "ungrounded"]
    assert rows[1].detail == 'answer "The Loire" does not occur in the context'
    assert check.notes() == ["grounded: fields are ignored for qa-open-book tasks; the whole answer is checked"]


def test_qa_closed_book_is_skipped_with_source_auto_and_checked_when_asked() -> None:
    rows = [row(CLOSED_BOOK, "What is the capital of France?", "Paris")]
    check = run(CLOSED_BOOK, rows)
    assert rows[0].reason is None and "qa-closed-book" in check.notes()[0]
    rows = [row(CLOSED_BOOK, "What is the capital of France?", "Paris")]
    run(CLOSED_BOOK, rows, source="input")
    assert rows[0].detail == 'answer "Paris" does not occur in the input'


def test_classification_is_untouched_with_a_note() -> None:
    rows = [row(CLASSIFY, "my card broke", "card"), row(CLASSIFY, "send money", "transfer")]
    check = run(CLASSIFY, rows)
    assert [r.reason for r in rows] == [None, None]
    assert check.notes() == ["grounded: not applicable to classification tasks"]


def test_empty_strings_pass_and_long_values_are_shortened() -> None:
    spec = TaskSpec(name="e", type="extraction", description="d", output_schema={"type": "object"})
    rows = [row(spec, "a sentence", {"note": "", "blank": "  "}),
            row(spec, "a sentence", {"note": "x" * 300})]
    run(spec, rows)
    assert rows[0].reason is None
    assert rows[1].detail == f'output field note "{"x" * 100}…" does not occur in the input'


def test_config_defaults_and_errors() -> None:
    config = build_config(None, None)
    assert config.grounded == GroundedConfig() and not config.grounded.enabled
    config = build_config({"grounded": {"enabled": True}}, {"grounded": {"fields": ["entities.text"]}})
    assert config.grounded.enabled and config.grounded.fields == ["entities.text"]
    assert config.to_dict()["grounded"]["source"] == "auto"
    with pytest.raises(InvalidArgument, match=r"unknown validation setting validation\.grounded\.feilds; "
                                              r"known keys of validation\.grounded: enabled, fields"):
        build_config({}, {"grounded": {"feilds": ["entities.text"]}})
    with pytest.raises(InvalidArgument, match=r"validation\.grounded\.source must be one of auto, input, "
                                              r"context, both, got 'passage'"):
        build_config({}, {"grounded": {"source": "passage"}})
    with pytest.raises(InvalidArgument, match=r"validation\.grounded\.fields: expected a list"):
        build_config({}, {"grounded": {"fields": "entities.text"}})
    with pytest.raises(InvalidArgument, match=r"validation\.grounded\.fields\[1\]: expected a string"):
        build_config({}, {"grounded": {"fields": ["entities.text", 3]}})
    with pytest.raises(InvalidArgument, match=r"validation\.grounded\.fields\[0\]: 'entities\[\]\.text' is not "
                                              r"a dotted path"):
        build_config({}, {"grounded": {"fields": ["entities[].text"]}})
    with pytest.raises(InvalidArgument, match=r"validation\.grounded\.case_sensitive: expected true or false"):
        build_config({}, {"grounded": {"case_sensitive": "no"}})


def test_a_field_the_schema_cannot_have_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match=r'validation\.grounded\.fields\[0\]: "entities\.txt" is not in '
                                              r'the task\'s output_schema: entities has no property "txt" '
                                              r"\(it has: text, type\)"):
        GroundedFilter(CONLL, GroundedConfig(enabled=True, fields=["entities.txt"]))
    with pytest.raises(InvalidArgument, match="the output has no property"):
        GroundedFilter(CONLL, GroundedConfig(enabled=True, fields=["entity.text"]))
    open_schema = TaskSpec(name="e", type="extraction", description="d", output_schema={"type": "object"})
    GroundedFilter(open_schema, GroundedConfig(enabled=True, fields=["anything.at.all"]))  # nothing to check


def test_in_the_chain_after_format(tmp_path: Path) -> None:
    lines = [
        json.dumps({"input": "Germany 's team beat Wales .", "output": entities(("Germany", "LOC"), ("Wales", "LOC"))}),
        json.dumps({"input": HALLUCINATED, "output": entities(("Zimbabwe Open", "MISC"))}),
        json.dumps({"input": "Ajax won .", "output": entities(("Ajax", "CLUB"))}),  # format: not in the enum
    ]
    examples = tmp_path / "generated.jsonl"
    examples.write_text("\n".join(lines) + "\n")
    config = build_config({"grounded": {"enabled": True}}, {"off_topic": {"enabled": False}})
    outcome = validate(CONLL, examples, tmp_path / "out", config, token_counter=TokenCounter(None, "whitespace"))
    rejected = [json.loads(x) for x in outcome.rejected.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejected] == [(2, "ungrounded"), (3, "format")]
    assert outcome.report["rejected_by_reason"]["ungrounded"] == 1 and outcome.report["accepted"] == 1
