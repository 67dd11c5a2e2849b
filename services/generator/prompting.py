"""Teacher prompts (rendered from the Jinja templates in ``prompts/``) and the decoding
constraint that goes with each. The default teacher is a *base* model, so every prompt is a
few-shot continuation that ends where the model should start writing ("Label:", "Output:")."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from services.common.taskspec import TOOL_TASKS, Example, OutputError, TaskSpec, canonical_json, check_output
from services.generator.backend import Constraint

PROMPTS_DIR = Path(__file__).parent / "prompts"
# Few-shot blocks are cut to this many characters (~1,500 tokens) so prompts fit small contexts.
DEFAULT_SHOT_BUDGET = 6000


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)), trim_blocks=True,
                              lstrip_blocks=True, undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=1)
def mutations() -> dict[str, str]:
    """Mutation name → the sentence put into the input-generation prompt (prompts/mutations.yaml)."""
    data = yaml.safe_load((PROMPTS_DIR / "mutations.yaml").read_text(encoding="utf-8"))
    return {str(k): str(v or "") for k, v in data.items()}


def family(task_type: str) -> str:
    """Which template pair a task type uses."""
    if task_type in TOOL_TASKS:
        return "tool_calling"
    if task_type.startswith("qa-"):
        return "qa"
    return task_type


def one_line(text: str) -> str:
    """Inputs are shown one per line in few-shot blocks, so the model writes one line back."""
    return " ".join(str(text).split())


def _render(name: str, **values: Any) -> str:
    # Prompts end exactly where the teacher writes: no trailing space or newline (a trailing
    # space makes SentencePiece tokenizers split the next word oddly).
    return _env().get_template(name).render(**values).rstrip()


def _fit(items: list[Any], size: Any, budget: int) -> list[Any]:
    kept, used = [], 0
    for item in items:
        cost = size(item)
        if kept and used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept


def render_input_prompt(spec: TaskSpec, shots: list[str], *, label: str = "", mutation: str = "none",
                        topic: str = "", passage: str = "", budget: int = DEFAULT_SHOT_BUDGET) -> str:
    """Prompt that makes the teacher write one new task input after a list of seed inputs."""
    lines = _fit([one_line(s) for s in shots], len, budget)
    return _render(f"{family(spec.type)}_input.j2", task=spec, shots=lines, label=label,
                   label_description=spec.label_descriptions.get(label, "") if label else "",
                   mutation=mutations().get(mutation, ""), topic=one_line(topic),
                   passage=one_line(passage)[:600])


def render_label_prompt(spec: TaskSpec, shots: list[Example], text: str, context: str = "",
                        budget: int = DEFAULT_SHOT_BUDGET) -> str:
    """Prompt that makes the teacher answer one input, few-shot from labelled seeds."""
    shown = [Example(input=one_line(s.input), output=s.output, context=one_line(s.context)[:800], id=s.id)
             for s in shots]
    shown = _fit(shown, lambda s: len(s.input) + len(s.output) + len(s.context) + 16, budget)
    return _render(f"{family(spec.type)}_label.j2", task=spec, shots=shown, input=one_line(text),
                   context=one_line(context)[:1500], open_book=spec.type == "qa-open-book",
                   schema_json=json.dumps(spec.output_schema or {}, separators=(",", ":")))


def input_stop(spec: TaskSpec) -> list[str]:
    return ["\n"]


def tool_calls_schema(spec: TaskSpec) -> dict[str, Any]:
    """JSON Schema of the answer of a tool-calling task: a list of calls, each naming one tool
    with that tool's own parameter schema for its arguments."""
    variants = [{
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": tool.parameters or {"type": "object"}},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    } for tool in spec.tools]
    items = variants[0] if len(variants) == 1 else {"anyOf": variants}
    schema: dict[str, Any] = {"type": "array", "items": items, "maxItems": 4}
    if not spec.allow_no_call:
        schema["minItems"] = 1
    return schema


def label_constraint(spec: TaskSpec) -> Constraint:
    """The decoding constraint of the teacher's answer: the label choice, the output JSON
    Schema, the tool-call schema; free text for QA."""
    if spec.type == "classification":
        # A leading space: the prompt ends with "Label:" and the answer continues the line.
        return Constraint.choice([" " + label for label in spec.labels])
    if spec.type == "extraction":
        return Constraint.json_schema(spec.output_schema or {"type": "object"})
    if spec.type in TOOL_TASKS:
        return Constraint.json_schema(tool_calls_schema(spec))
    return Constraint()


DEFAULT_INPUT_TOKENS = 96  # a generated input's budget before it is fit to the seeds


def label_max_tokens(spec: TaskSpec, requested: int = 0) -> int:
    if requested > 0:
        return requested
    if spec.type == "classification":
        return 16
    if spec.is_structured:
        return 256
    return 96


def label_stop(spec: TaskSpec) -> list[str]:
    # Structured answers end when the grammar ends; free-text answers end with their line.
    return [] if spec.is_structured or spec.type == "classification" else ["\n"]


def parse_label(spec: TaskSpec, raw: str) -> str:
    """The teacher's raw answer → canonical output text; raises OutputError (never crashes on
    garbage: a truncated JSON or an unknown label is a rejected row)."""
    text = raw.strip()
    if spec.type == "classification":
        return check_output(spec, text)
    if spec.is_structured:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OutputError(f"teacher output is not valid JSON: {exc.msg} (column {exc.colno})") from None
        if spec.type in TOOL_TASKS and isinstance(value, dict):
            value = [value]
        return check_output(spec, canonical_json(value) if not isinstance(value, str) else value)
    return check_output(spec, text)
