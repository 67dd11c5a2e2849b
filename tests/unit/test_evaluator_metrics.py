"""Every evaluator metric pinned on small cases computed by hand, malformed predictions included."""

from __future__ import annotations

import json

import pytest

from services.common.taskspec import TaskSpec, Tool
from services.evaluator.metrics import (
    PRIMARY_METRIC,
    classification,
    extraction,
    qa,
    score_task,
    tool_calling,
)

LABELS = ["positive", "negative", "neutral"]


# ----- classification ---------------------------------------------------------------------------
def test_classification_hand_computed_with_malformed_prediction():
    golds = ["positive", "positive", "negative", "neutral", "negative"]
    preds = ["positive", "negative", "negative", "banana", "Negative."]
    scores = classification.evaluate(golds, preds, LABELS)
    # Right: 1, 3, 5 ("Negative." folds to negative) -> 3/5.
    assert scores.metrics["accuracy"] == pytest.approx(0.6)
    per = scores.extra["per_label"]
    # positive: tp 1, fp 0, fn 1 -> P 1, R .5, F1 2/3
    assert per["positive"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    # negative: tp 2, fp 1 (gold positive), fn 0 -> P 2/3, R 1, F1 .8
    assert per["negative"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    # neutral: predicted "banana" (invalid) -> tp 0 -> F1 0; invalid counts as nobody's false positive.
    assert per["neutral"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert scores.metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert scores.malformed == 1
    assert "banana" in scores.examples[3].malformed
    assert [e.score for e in scores.examples] == [1.0, 0.0, 1.0, 0.0, 1.0]
    matrix = scores.extra["confusion_matrix"]
    assert matrix["rows"] == LABELS
    assert matrix["columns"] == LABELS + ["(invalid)"]
    assert matrix["counts"] == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1]]


def test_classification_macro_f1_skips_labels_absent_from_gold_and_predictions():
    scores = classification.evaluate(["positive", "negative"], ["positive", "negative"], LABELS)
    assert scores.metrics == {"accuracy": 1.0, "macro_f1": 1.0}
    assert "neutral" not in scores.extra["per_label"]


@pytest.mark.parametrize("raw,expected", [
    ("positive", "positive"), ("  Positive ", "positive"), ('"neutral"', "neutral"), ("**negative**", "negative"),
    ("not positive", None), ("positive negative", None), ("", None), ("pos", None),
])
def test_normalize_label(raw, expected):
    assert classification.normalize_label(raw, LABELS) == expected


def test_classification_all_malformed_does_not_crash():
    scores = classification.evaluate(["positive", "negative"], ["{", ""], LABELS)
    assert scores.metrics == {"accuracy": 0.0, "macro_f1": 0.0}
    assert scores.malformed == 2


# ----- extraction -------------------------------------------------------------------------------
def test_extraction_field_level_micro_prf():
    golds = ['{"name":"Ada","city":"Paris","skills":["math","code"]}', '{"name":"Bob","age":30}']
    preds = ['{"name":"Ada","city":"London","skills":["code","math"]}',   # 3 of 4 fields right
             '{"name":"Bob","age":30.0}']                                # exact (30 == 30.0)
    scores = extraction.evaluate(golds, preds)
    # tp 3+2 = 5, predicted 4+2 = 6, gold 4+2 = 6 -> P = R = F1 = 5/6
    assert scores.metrics["field_precision"] == pytest.approx(5 / 6)
    assert scores.metrics["field_recall"] == pytest.approx(5 / 6)
    assert scores.metrics["field_f1"] == pytest.approx(5 / 6)
    assert scores.metrics["exact_match"] == 0.5
    assert scores.metrics["json_valid"] == 1.0
    assert scores.examples[0].score == pytest.approx(0.75)


def test_extraction_malformed_and_wrong_type_predictions():
    golds = ['{"a":1,"b":"x"}', '{"a":2}', '{"a":3}']
    preds = ['{"a":1,"b":"x"', '[1,2]', '{"a":3,"extra":"  y  z "}']
    scores = extraction.evaluate(golds, preds)
    assert scores.malformed == 2
    assert "not valid JSON" in scores.examples[0].malformed
    assert "list" in scores.examples[1].malformed
    # tp 0+0+1, predicted 0+0+2, gold 2+1+1 -> P 1/2, R 1/4, F1 1/3
    assert scores.metrics["field_precision"] == pytest.approx(0.5)
    assert scores.metrics["field_recall"] == pytest.approx(0.25)
    assert scores.metrics["field_f1"] == pytest.approx(1 / 3)
    assert scores.metrics["json_valid"] == pytest.approx(1 / 3)
    assert scores.metrics["exact_match"] == 0.0


def test_extraction_schema_validity_nulls_and_whitespace():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    scores = extraction.evaluate(['{"a":1,"note":"hello world"}', '{"a":1}'],
                                 ['{"a":1,"note":" hello   world ","missing":null}', '{"b":1}'], schema)
    assert scores.examples[0].details["exact"] is True  # null = absent; whitespace folded
    assert scores.metrics["schema_valid"] == 0.5
    assert extraction.flatten_fields({"a": {"b": [1, None]}}) == {("a.b[]", "1.0"): 1}


def test_extraction_entities_in_a_list_count_only_with_text_and_type_right():
    gold = '{"entities": [{"text": "EU", "type": "ORG"}, {"text": "German", "type": "MISC"}, {"text": "Peter", "type": "PER"}]}'
    # Types swapped between EU and German: under leaf-by-leaf scoring this would be a perfect 1.0.
    swapped = '{"entities": [{"text": "EU", "type": "MISC"}, {"text": "German", "type": "ORG"}, {"text": " Peter ", "type": "PER"}]}'
    scores = extraction.evaluate([gold], [swapped])
    assert scores.metrics["field_precision"] == pytest.approx(1 / 3)   # only Peter (whitespace folded)
    assert scores.metrics["field_recall"] == pytest.approx(1 / 3)
    assert scores.metrics["exact_match"] == 0.0
    # Order does not matter; a missing entity costs recall, an extra one precision: P 2/3, R 2/3.
    reordered = '{"entities": [{"type": "PER", "text": "Peter"}, {"text": "EU", "type": "ORG"}, {"text": "Bonn", "type": "LOC"}]}'
    scores = extraction.evaluate([gold], [reordered])
    assert scores.metrics["field_f1"] == pytest.approx(2 / 3)
    assert extraction.flatten_fields({"e": [{"text": "EU", "type": "ORG", "x": None}, {}]}) == \
        {("e[]", '{"text":"EU","type":"ORG"}'): 1}


# ----- QA ---------------------------------------------------------------------------------------
def test_qa_exact_match_token_f1_rouge_l():
    assert qa.exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert qa.exact_match("Paris", "Paris, France") == 0.0
    # gold [paris], pred [paris, france]: P 1/2, R 1 -> F1 2/3
    assert qa.token_f1("Paris", "Paris, France") == pytest.approx(2 / 3)
    assert qa.token_f1("", "") == 1.0
    assert qa.token_f1("Paris", "") == 0.0
    # gold [cat sat on mat], pred [cat on mat]: LCS 3 -> P 1, R 3/4, F 6/7
    assert qa.rouge_l("the cat sat on the mat", "a cat on the mat") == pytest.approx(6 / 7)
    # LCS is order-aware where token F1 is not: [b a] vs [a b] -> LCS 1 -> 1/2
    assert qa.token_f1("alpha beta", "beta alpha") == 1.0
    assert qa.rouge_l("alpha beta", "beta alpha") == pytest.approx(0.5)
    # Non-ASCII answers are compared, not dropped (rouge-score's own tokenizer would drop them).
    assert qa.rouge_l("καλημέρα κόσμε", "καληνύχτα") == 0.0


def test_qa_evaluate_aggregates_and_flags_empty_answers():
    scores = qa.evaluate(["Paris", "4"], ["paris", ""], judge_verdicts=[1.0, 0.0])
    assert scores.metrics == pytest.approx({"exact_match": 0.5, "token_f1": 0.5, "rouge_l": 0.5, "judge_score": 0.5})
    assert scores.examples[1].malformed == "empty answer"


def test_judge_prompt_and_verdict():
    prompt = qa.judge_prompt("Capital of France?", "Paris", "paris", instructions="Be lenient.")
    assert "Be lenient." in prompt and prompt.endswith("Answer:")
    assert qa.judge_verdict(" Yes.") == 1.0
    assert qa.judge_verdict("no") == 0.0
    assert qa.judge_verdict("no", {"yes": 0.7, "no": 0.3}) == 0.7


# ----- tool calling -----------------------------------------------------------------------------
WEATHER = Tool("get_weather", "Weather for a city", {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "default": "celsius"}},
    "required": ["city"]})
TIME = Tool("get_time", "Time in a city", {"type": "object", "properties": {"city": {"type": "string"}}})
GOLD = '[{"name":"get_weather","arguments":{"city":"Paris"}}]'


@pytest.mark.parametrize("prediction,stage", [
    ('[{"name":"get_weather","arguments":{"city":"Paris"}}]', 1.0),
    ('{"name":"get_weather","arguments":{"city":"paris"}}', 1.0),          # single object, case folded
    ('[{"name":"get_weather","arguments":"{\\"city\\": \\"Paris\\"}"}]', 1.0),  # arguments as JSON text
    ('[{"type":"function","function":{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}}}]', 1.0),
    ('[{"name":"get_weather","arguments":{"city":"Paris","unit":"fahrenheit"}}]', 0.75),  # wrong default value
    ('[{"name":"get_weather","arguments":{"city":"Rome"}}]', 0.75),
    ('[{"name":"get_weather","arguments":{"town":"Paris"}}]', 0.5),
    ('[{"name":"get_time","arguments":{"city":"Paris"}}]', 0.25),
    ('[]', 0.25),
    ('"get_weather"', 0.25),                                               # JSON, but not calls
    ('[{"name":"get_weather","arguments":{"city":"Paris"}', 0.0),          # truncated JSON
    ('call get_weather(Paris)', 0.0),
])
def test_tool_calling_staged_credit(prediction, stage):
    scores = tool_calling.evaluate([GOLD], [prediction], [WEATHER, TIME])
    assert scores.metrics["staged_score"] == stage
    assert scores.metrics["exact_match"] == float(stage == 1.0)


def test_tool_calling_parallel_calls_match_in_any_order_and_abstention():
    gold_parallel = ('[{"name":"get_weather","arguments":{"city":"Paris"}},'
                     '{"name":"get_time","arguments":{"city":"Oslo"}}]')
    golds = [gold_parallel, "[]", "[]", GOLD]
    preds = ['[{"name":"get_time","arguments":{"city":"Oslo"}},{"name":"get_weather","arguments":{"city":"Paris"}}]',
             "[]", GOLD, "[]"]
    scores = tool_calling.evaluate(golds, preds, [WEATHER, TIME])
    assert [e.score for e in scores.examples] == [1.0, 1.0, 0.25, 0.25]
    assert scores.metrics["staged_score"] == pytest.approx(2.5 / 4)
    assert scores.metrics["exact_match"] == 0.5
    assert scores.metrics["abstention_accuracy"] == 0.5      # 1 of the 2 no-tool examples
    assert scores.metrics["false_abstention_rate"] == 0.5    # 1 of the 2 call examples answered []
    assert scores.metrics["function_match"] == 0.5


def test_tool_calling_bfcl_possible_answers_and_value_rules():
    possible = [{"get_weather": {"city": ["Paris", "Paris, France"], "unit": ["celsius", ""]}}]
    for prediction, stage in [('{"name":"get_weather","arguments":{"city":"paris france"}}', 1.0),
                              ('{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}}', 1.0),
                              ('{"name":"get_weather","arguments":{"unit":"celsius"}}', 0.5)]:
        scores = tool_calling.evaluate([GOLD], [prediction], [WEATHER], [possible])
        assert scores.metrics["staged_score"] == stage, prediction
    assert tool_calling.values_match(3, 3.0) and not tool_calling.values_match(True, 1)
    assert tool_calling.values_match([1, "a b"], [1.0, "AB"]) and not tool_calling.values_match([1, 2], [2, 1])
    assert tool_calling.values_match({"k": "New-York"}, {"k": "new york"})


# ----- dispatch ---------------------------------------------------------------------------------
def test_score_task_dispatch_and_primary_metrics():
    spec = TaskSpec(name="t", type="tool-calling", description="d", tools=[WEATHER], allow_no_call=True)
    scores = score_task(spec, [GOLD], [GOLD], metadata=[{}])
    assert scores.metrics[PRIMARY_METRIC["tool-calling"]] == 1.0
    qa_spec = TaskSpec(name="q", type="qa-closed-book", description="d")
    assert score_task(qa_spec, ["Paris"], ["Paris"]).metrics[PRIMARY_METRIC["qa-closed-book"]] == 1.0
    ex_spec = TaskSpec(name="e", type="extraction", description="d", output_schema={"type": "object"})
    assert score_task(ex_spec, ['{"a":1}'], ["nope"]).metrics[PRIMARY_METRIC["extraction"]] == 0.0
    assert set(PRIMARY_METRIC) == {"classification", "extraction", "qa-open-book", "qa-closed-book",
                                   "tool-calling", "multi-turn-tool-calling"}
    json.dumps(scores.metrics)
