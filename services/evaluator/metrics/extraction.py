"""Extraction metrics: JSON validity, schema validity, exact match, field-level precision/recall/F1.

Fields are the leaves of the answer object, named by their path: ``{"a": {"b": 1}, "c": [2, 3]}``
has the fields ``a.b = 1``, ``c[] = 2`` and ``c[] = 3`` (list items are an unordered multiset, so
the order a model lists entities in does not matter). An object inside a list is one field as a
whole: ``{"entities": [{"text": "EU", "type": "ORG"}]}`` has the single field
``entities[] = {"text": "EU", "type": "ORG"}``, so an entity counts as found only with its text
and its type right (entity-level F1, as CoNLL scores it), never as two half-credits that could
pair a text with another entity's type. A ``null`` leaf is "not found" and is no field. Strings are compared with surrounding and repeated whitespace folded; numbers by value
(1 == 1.0). Field precision/recall/F1 are micro-averaged over the whole test set: every field
counts once, so an example with many fields weighs more than one with few. A prediction that is
not a JSON object is malformed: its fields count as missed (recall drops), none as predicted."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jsonschema

from services.evaluator.metrics.common import ExampleScore, TaskScores, check_lengths, mean


def parse_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None) or (None, why it is malformed)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        return None, f"not valid JSON: {getattr(exc, 'msg', exc)}"
    if not isinstance(value, dict):
        return None, f"JSON {type(value).__name__} where an object was expected"
    return value, None


def _leaf(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(" ".join(value.split()), ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(float(value))
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _canonical(value: Any) -> Any:
    """A record compared as one unit: strings whitespace-folded, numbers as floats, nulls and
    empty keys dropped, lists as sorted multisets."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list):
        return sorted((_canonical(v) for v in value if v is not None), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def flatten_fields(value: Any, path: str = "") -> Counter[tuple[str, str]]:
    """Multiset of (path, canonical leaf value) pairs; an object in a list is one leaf."""
    fields: Counter[tuple[str, str]] = Counter()
    if isinstance(value, dict):
        for key, item in value.items():
            fields += flatten_fields(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                record = _canonical(item)
                if record:
                    fields[(f"{path}[]", json.dumps(record, ensure_ascii=False, sort_keys=True,
                                                    separators=(",", ":")))] += 1
            else:
                fields += flatten_fields(item, f"{path}[]")
    elif value is not None:
        fields[(path, _leaf(value))] += 1
    return fields


def field_counts(gold: dict[str, Any], predicted: dict[str, Any] | None) -> tuple[int, int, int]:
    """(true positives, predicted fields, gold fields)."""
    gold_fields = flatten_fields(gold)
    pred_fields = flatten_fields(predicted) if predicted is not None else Counter()
    return sum((gold_fields & pred_fields).values()), sum(pred_fields.values()), sum(gold_fields.values())


def prf(tp: int, predicted: int, gold: int) -> tuple[float, float, float]:
    """Precision, recall, F1; an empty side scores 1.0 when the other is empty too."""
    precision = tp / predicted if predicted else (1.0 if gold == 0 else 0.0)
    recall = tp / gold if gold else (1.0 if predicted == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def evaluate(golds: list[str], predictions: list[str], schema: dict[str, Any] | None = None) -> TaskScores:
    check_lengths(golds, predictions)
    validator = jsonschema.Draft202012Validator(schema) if schema else None
    examples: list[ExampleScore] = []
    totals = [0, 0, 0]
    valid, schema_ok, exact = [], [], []
    for gold_text, raw in zip(golds, predictions):
        gold, _ = parse_object(gold_text)
        gold = gold or {}
        predicted, problem = parse_object(raw)
        tp, n_pred, n_gold = field_counts(gold, predicted)
        totals = [totals[0] + tp, totals[1] + n_pred, totals[2] + n_gold]
        is_exact = predicted is not None and flatten_fields(predicted) == flatten_fields(gold)
        fits = predicted is not None and (validator is None or validator.is_valid(predicted))
        valid.append(float(predicted is not None))
        schema_ok.append(float(fits))
        exact.append(float(is_exact))
        _, _, example_f1 = prf(tp, n_pred, n_gold)
        examples.append(ExampleScore(example_f1 if predicted is not None else 0.0, problem,
                                     {"exact": is_exact, "schema_valid": fits, "tp": tp, "predicted_fields": n_pred,
                                      "gold_fields": n_gold}))
    precision, recall, f1 = prf(*totals) if golds else (0.0, 0.0, 0.0)
    return TaskScores(
        metrics={"json_valid": mean(valid), "schema_valid": mean(schema_ok), "exact_match": mean(exact),
                 "field_precision": precision, "field_recall": recall, "field_f1": f1},
        examples=examples,
        extra={"field_counts": {"true_positives": totals[0], "predicted": totals[1], "gold": totals[2]}},
    )
