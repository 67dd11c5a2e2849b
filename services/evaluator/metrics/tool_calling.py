"""Tool-calling metrics: AST-style matching in the Berkeley Function Calling Leaderboard (BFCL)
convention, staged credit, and abstention.

A gold answer is turned into "possible answers": for every call, each argument maps to a list of
acceptable values (BFCL's ``possible_answer`` files, which an example may also carry verbatim in
``metadata.possible_answer``; there ``""`` in a list means the argument may be left out). From a
plain gold call, each argument's gold value is acceptable; an argument whose schema ``default``
equals the gold value, or that the gold call leaves out but whose schema has a default, may be left
out or given with that default (equivalence with default arguments filled in).

Values match BFCL-style: strings after folding case and removing spaces and ``,./-_*^``; numbers by
value (an int for a float is fine, a bool is never a number); lists in order, item by item; objects
key by key. Several calls match as a set (the order of parallel calls is free).

Staged credit per example (distil labs' convention): valid JSON 0.25, right function names 0.5,
right argument keys 0.75, exact 1.0. When no tool fits (gold ``[]``), answering ``[]`` is exact and
any call earns only the valid-JSON stage."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.evaluator.metrics.common import ExampleScore, TaskScores, check_lengths, mean

STAGE_JSON, STAGE_FUNCTION, STAGE_KEYS, STAGE_EXACT = 0.25, 0.5, 0.75, 1.0
_STRIP = re.compile(r"[ ,./\-_*^]")
_MAX_PERMUTED = 6


@dataclass
class GoldCall:
    name: str
    acceptable: dict[str, list[Any]]
    optional: set[str] = field(default_factory=set)

    @property
    def required(self) -> set[str]:
        return set(self.acceptable) - self.optional


def parse_calls(text: str) -> tuple[list[dict[str, Any]] | None, bool, str | None]:
    """(calls, is_json, problem). Accepts a list of ``{"name", "arguments"}``, a single such
    object, the OpenAI shape ``{"type": "function", "function": {...}}``, and arguments given as
    a JSON string."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        return None, False, f"not valid JSON: {getattr(exc, 'msg', exc)}"
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None, True, f"JSON {type(value).__name__} where a list of calls was expected"
    calls = []
    for index, item in enumerate(value):
        if isinstance(item, dict) and isinstance(item.get("function"), dict):
            item = item["function"]
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None, True, f'call {index} has no "name"'
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                return None, True, f"call {index} arguments are not valid JSON"
        if not isinstance(arguments, dict):
            return None, True, f"call {index} arguments are not an object"
        calls.append({"name": item["name"], "arguments": arguments})
    return calls, True, None


def _tool_defaults(tools: Iterable[Any]) -> dict[str, dict[str, Any]]:
    defaults: dict[str, dict[str, Any]] = {}
    for tool in tools:
        name = tool["name"] if isinstance(tool, dict) else tool.name
        params = (tool.get("parameters") if isinstance(tool, dict) else tool.parameters) or {}
        defaults[name] = {key: spec["default"] for key, spec in (params.get("properties") or {}).items()
                          if isinstance(spec, dict) and "default" in spec}
    return defaults


def gold_calls(gold_text: str, tools: Iterable[Any] = (), possible_answer: Any = None) -> list[GoldCall]:
    """The possible answers of one example (see the module docstring)."""
    if possible_answer is not None:  # BFCL form: [{"fn": {"arg": [v1, v2, ""]}}, ...]
        result = []
        for entry in possible_answer:
            (name, arguments), = entry.items()
            acceptable = {k: [v for v in values if v != ""] for k, values in arguments.items()}
            result.append(GoldCall(name, acceptable, {k for k, values in arguments.items() if "" in values}))
        return result
    defaults = _tool_defaults(tools)
    calls, _, problem = parse_calls(gold_text)
    if calls is None:
        raise ValueError(f"gold answer is not a list of tool calls: {problem}")
    result = []
    for call in calls:
        tool_defaults = defaults.get(call["name"], {})
        acceptable = {k: [v] for k, v in call["arguments"].items()}
        optional = {k for k, v in call["arguments"].items() if k in tool_defaults and values_match(v, tool_defaults[k])}
        for key, default in tool_defaults.items():
            if key not in acceptable:
                acceptable[key] = [default]
                optional.add(key)
        result.append(GoldCall(call["name"], acceptable, optional))
    return result


def _standardize(text: str) -> str:
    return _STRIP.sub("", text).lower().replace("'", '"')


def values_match(predicted: Any, gold: Any) -> bool:
    if isinstance(gold, bool) or isinstance(predicted, bool):
        return isinstance(gold, bool) and isinstance(predicted, bool) and gold == predicted
    if isinstance(gold, (int, float)):
        return isinstance(predicted, (int, float)) and float(predicted) == float(gold)
    if isinstance(gold, str):
        return isinstance(predicted, str) and _standardize(predicted) == _standardize(gold)
    if isinstance(gold, list):
        return (isinstance(predicted, list) and len(predicted) == len(gold)
                and all(values_match(p, g) for p, g in zip(predicted, gold)))
    if isinstance(gold, dict):
        return (isinstance(predicted, dict) and set(predicted) == set(gold)
                and all(values_match(predicted[k], gold[k]) for k in gold))
    return predicted == gold


def keys_match(call: dict[str, Any], gold: GoldCall) -> bool:
    keys = set(call["arguments"])
    return call["name"] == gold.name and gold.required <= keys <= set(gold.acceptable)


def call_matches(call: dict[str, Any], gold: GoldCall) -> bool:
    return keys_match(call, gold) and all(
        any(values_match(value, accepted) for accepted in gold.acceptable[key])
        for key, value in call["arguments"].items())


def _assignable(calls: list[dict[str, Any]], golds: list[GoldCall], test) -> bool:
    """Is there a one-to-one pairing of predicted and gold calls where every pair passes ``test``?"""
    if len(calls) != len(golds):
        return False
    if len(calls) <= _MAX_PERMUTED:
        return any(all(test(calls[i], gold) for i, gold in zip(order, golds))
                   for order in itertools.permutations(range(len(calls))))
    free = list(range(len(calls)))  # many parallel calls: greedy pairing is good enough
    for gold in golds:
        match = next((i for i in free if test(calls[i], gold)), None)
        if match is None:
            return False
        free.remove(match)
    return True


def staged_score(calls: list[dict[str, Any]] | None, is_json: bool, golds: list[GoldCall]) -> float:
    if not is_json:
        return 0.0
    if calls is None:
        return STAGE_JSON
    if not golds:
        return STAGE_EXACT if not calls else STAGE_JSON
    if Counter(c["name"] for c in calls) != Counter(g.name for g in golds):
        return STAGE_JSON
    if not _assignable(calls, golds, keys_match):
        return STAGE_FUNCTION
    if not _assignable(calls, golds, call_matches):
        return STAGE_KEYS
    return STAGE_EXACT


def evaluate(golds: list[str], predictions: list[str], tools: Iterable[Any] = (),
             possible_answers: list[Any] | None = None) -> TaskScores:
    check_lengths(golds, predictions)
    tools = list(tools)
    examples: list[ExampleScore] = []
    staged, exact, valid, function = [], [], [], []
    abstain_right: list[float] = []
    abstain_wrong: list[float] = []
    for index, (gold_text, raw) in enumerate(zip(golds, predictions)):
        possible = possible_answers[index] if possible_answers else None
        gold = gold_calls(gold_text, tools, possible)
        calls, is_json, problem = parse_calls(raw)
        score = staged_score(calls, is_json, gold)
        staged.append(score)
        exact.append(float(score == STAGE_EXACT))
        valid.append(float(is_json))
        function.append(float(score >= STAGE_FUNCTION))
        if not gold:
            abstain_right.append(float(calls == []))
        else:
            abstain_wrong.append(float(calls == []))
        examples.append(ExampleScore(score, problem, {"stage": score, "exact": score == STAGE_EXACT,
                                                      "abstained": calls == []}))
    metrics = {"staged_score": mean(staged), "exact_match": mean(exact), "json_valid": mean(valid),
               "function_match": mean(function)}
    if abstain_right:
        metrics["abstention_accuracy"] = mean(abstain_right)
    if abstain_wrong:
        metrics["false_abstention_rate"] = mean(abstain_wrong)
    return TaskScores(metrics, examples)
