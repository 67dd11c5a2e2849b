"""Grounded: what an output copies out of the source text must actually be in it. A small teacher
hallucinates in extraction tasks (an entity that the sentence never names) and in open-book QA (an
answer that is not in the passage); such a row teaches the student to invent.

Which text is checked: for extraction, the configured ``fields`` (dotted paths into the output
JSON, a step through a list applying to every item), or by default every string leaf whose schema
node is free text (leaves with ``enum`` or ``const`` are labels, not copies); for QA, the whole
answer. Against what: ``source`` — by default the input for extraction (and the row's context
where it has one), the passage for open-book QA; closed-book QA has no passage, so there the
filter checks nothing unless ``source`` says otherwise. Classification and tool calls are not
copies of the input: the filter does not apply to them.

Matching is a substring test after Unicode NFKC, case folding (unless ``case_sensitive``) and
removing all whitespace on both sides — so the tokenised text of corpora like CoNLL
("Leeds 's", "( U.S. )") matches the natural spelling ("Leeds's", "(U.S.)") and vice versa.
Empty strings pass. Numbers and booleans are not checked."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Any

from services.common.errors import InvalidArgument
from services.common.taskspec import TaskSpec
from services.validator.config import GroundedConfig
from services.validator.row import Row

APPLICABLE = ("extraction", "qa-open-book", "qa-closed-book")
_SHOWN = 100  # characters of a value quoted in a reject detail


def normalize(text: str, case_sensitive: bool = False) -> str:
    text = unicodedata.normalize("NFKC", text)
    if not case_sensitive:
        text = text.casefold()
    return "".join(text.split())


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _property(node: Any, key: str) -> Any:
    """The schema node of ``key`` inside an object node, or None when it cannot be resolved."""
    if not isinstance(node, dict):
        return None
    properties = node.get("properties")
    if isinstance(properties, dict) and key in properties:
        return properties[key]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _items(node: Any) -> Any:
    if isinstance(node, dict) and isinstance(node.get("items"), dict):
        return node["items"]
    return None


def _is_free_text(node: Any) -> bool:
    """A leaf is copied text unless its schema fixes the value (enum, const); unresolved: free."""
    return not (isinstance(node, dict) and ("enum" in node or "const" in node))


def free_text_leaves(value: Any, node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string leaf of ``value`` whose schema node is free text."""
    if isinstance(value, str):
        if _is_free_text(node):
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from free_text_leaves(item, _property(node, key), _join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from free_text_leaves(item, _items(node), f"{path}[{index}]")


def select(value: Any, steps: list[str], path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for the strings a dotted path reaches; lists are stepped through item by item."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from select(item, steps, f"{path}[{index}]")
    elif not steps:
        if isinstance(value, str):
            yield path, value
    elif isinstance(value, dict) and steps[0] in value:
        yield from select(value[steps[0]], steps[1:], _join(path, steps[0]))


def check_fields(spec: TaskSpec, config: GroundedConfig) -> None:
    """Every configured path must exist in the task's output schema wherever the schema is closed
    enough to tell (a typo must not silently check nothing)."""
    if spec.type != "extraction" or not spec.output_schema:
        return
    for index, path in enumerate(config.fields):
        node: Any = spec.output_schema
        walked: list[str] = []
        for step in path.split("."):
            while _items(node) is not None:  # a step through a list: into its items
                node = _items(node)
            if not isinstance(node, dict):
                break
            properties = node.get("properties")
            if isinstance(properties, dict) and step in properties:
                node = properties[step]
                walked.append(step)
                continue
            if isinstance(properties, dict) and node.get("additionalProperties") is False:
                raise InvalidArgument(f'validation.grounded.fields[{index}]: "{path}" is not in the task\'s '
                                      f'output_schema: {".".join(walked) or "the output"} has no property '
                                      f'"{step}" (it has: {", ".join(properties) or "none"})')
            break  # an open object: anything may be there


def _quote(value: str) -> str:
    shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
    return f'"{shown}"'


class GroundedFilter:
    reason = "ungrounded"

    def __init__(self, spec: TaskSpec, config: GroundedConfig) -> None:
        check_fields(spec, config)
        self.spec = spec
        self.config = config
        self.steps = [path.split(".") for path in config.fields]
        self.applies = spec.type in APPLICABLE and not (spec.type == "qa-closed-book" and config.source == "auto")
        self.no_source = 0
        self.not_json = 0

    def _sources(self, row: Row) -> list[tuple[str, str]]:
        source = self.config.source
        if source == "auto":
            if self.spec.type == "qa-open-book":
                source = "context"
            else:
                source = "both" if row.context.strip() else "input"
        named = {"input": [("input", row.input)], "context": [("context", row.context)],
                 "both": [("input", row.input), ("context", row.context)]}[source]
        return [(name, text) for name, text in named if text.strip()]

    def _values(self, row: Row) -> Iterator[tuple[str, str]] | None:
        """(field path, text) pairs to check; None when the output cannot be read."""
        if self.spec.type != "extraction":
            return iter([("", row.output)])
        try:
            value = json.loads(row.output)
        except (json.JSONDecodeError, TypeError):
            return None
        if not self.steps:
            return free_text_leaves(value, self.spec.output_schema)
        return (pair for steps in self.steps for pair in select(value, steps))

    def apply(self, rows: list[Row]) -> None:
        if not self.applies:
            return
        case_sensitive = self.config.case_sensitive
        for row in rows:
            sources = self._sources(row)
            if not sources:
                self.no_source += 1
                continue
            values = self._values(row)
            if values is None:
                self.not_json += 1
                continue
            haystacks = [normalize(text, case_sensitive) for _, text in sources]
            missing = [(path, text) for path, text in values
                       if not any(normalize(text, case_sensitive) in haystack for haystack in haystacks)]
            if not missing:
                continue
            where = " or the ".join(name for name, _ in sources)
            path, text = missing[0]
            what = f"output field {path}" if path else "answer"
            detail = f"{what} {_quote(text)} does not occur in the {where}"
            if len(missing) > 1:
                detail += f" (and {len(missing) - 1} more)"
            row.reject(self.reason, detail)

    def notes(self) -> list[str]:
        kind = self.spec.type
        if kind not in APPLICABLE:
            return [f"grounded: not applicable to {kind} tasks"]
        if not self.applies:
            return ["grounded: qa-closed-book rows have no passage, so nothing was checked (source auto); "
                    "set validation.grounded.source to input to require answers to occur in the question"]
        notes = []
        if self.config.fields and kind != "extraction":
            notes.append(f"grounded: fields are ignored for {kind} tasks; the whole answer is checked")
        if self.no_source:
            notes.append(f"grounded: {self.no_source} row(s) had no source text to check against "
                         f"(source: {self.config.source}) and were not checked")
        if self.not_json:
            notes.append(f"grounded: {self.not_json} row(s) had an output that is not JSON (format filter "
                         "disabled?) and were not checked")
        return notes
