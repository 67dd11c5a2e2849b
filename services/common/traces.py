"""Production traces: ``traces.jsonl`` of OpenAI-format chat requests, with or without the old
model's answers, read into task inputs (and old answers where there are some).

Two line shapes are read, the ones logging proxies and fine-tuning exports write:

- ``{"messages": [...]}`` — OpenAI's chat fine-tuning format; a final assistant message is the
  old model's answer;
- ``{"request": {"messages": [...], ...}, "response": {"choices": [{"message": {...}}]}}`` — a logged
  request and its response (LiteLLM, Helicone, OpenPipe-style exports).

The trace's own system prompt is dropped (the student is trained with the task's), and the input
is the last user turn (for multi-turn tool calling: the conversation before the answer). A line
that is not one of these shapes is a TaskFolderError naming the line and field; an old answer that
does not fit the task (a label not in the list, JSON against the schema) is kept out, not an error:
production answers are what they are, and the teacher relabels every trace anyway."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.errors import TaskFolderError
from services.common.jsonl import iter_jsonl
from services.common.taskspec import OutputError, TaskSpec, canonical_json, check_output

TRACES_FILE = "traces.jsonl"
# Traces read from one file, at most: every one is relabelled by the teacher (twice or more), so a
# larger log is better sampled down first.
MAX_TRACES = 200_000


@dataclass
class Trace:
    """One trace as a task input. ``answer`` is the old model's answer in the task's output form
    (None when the trace has none or it does not fit the task); ``answer_error`` says why not."""

    line: int
    input: str
    context: str = ""
    answer: str | None = None
    answer_error: str = ""


def _text(content: Any, file: str, line: int, field: str) -> str:
    """A message's content: a string, or OpenAI's list of content parts (the text parts joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    raise TaskFolderError(file, f"{field} must be a string or a list of content parts", line, field)


def _messages(value: Any, file: str, line: int, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise TaskFolderError(file, f"{field} must be a non-empty list of chat messages", line, field)
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise TaskFolderError(file, f"{field}[{index}] must be an object with a role", line, f"{field}[{index}]")
    return value


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return None
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return None
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                return None
        out.append({"name": function["name"], "arguments": arguments})
    return out


def _answer_text(spec: TaskSpec, message: dict[str, Any], file: str, line: int, field: str) -> str:
    if spec.type in ("tool-calling", "multi-turn-tool-calling"):
        calls = _tool_calls(message)
        if calls is not None:
            return canonical_json(calls)
    return _text(message.get("content"), file, line, f"{field}.content")


def _split(spec: TaskSpec, messages: list[dict[str, Any]], file: str, line: int, field: str
           ) -> tuple[str, dict[str, Any] | None]:
    """(the task input, the final assistant message or None)."""
    answer = messages[-1] if messages[-1]["role"] == "assistant" else None
    turns = [m for m in (messages[:-1] if answer is not None else messages) if m["role"] != "system"]
    if spec.type == "multi-turn-tool-calling":
        if not turns:
            raise TaskFolderError(file, f"{field} has no turn but the system prompt", line, field)
        conversation = [{"role": m["role"], "content": _text(m.get("content"), file, line, field)} for m in turns]
        return canonical_json(conversation), answer
    users = [m for m in turns if m["role"] == "user"]
    if not users:
        raise TaskFolderError(file, f"{field} has no user message", line, field)
    text = _text(users[-1].get("content"), file, line, f"{field}.content").strip()
    if not text:
        raise TaskFolderError(file, f"{field}: the last user message is empty", line, field)
    return text, answer


def _response_message(row: dict[str, Any], file: str, line: int) -> dict[str, Any] | None:
    response = row.get("response")
    if response is None:
        return None
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
            or not isinstance(choices[0].get("message"), dict):
        raise TaskFolderError(file, "response must be an OpenAI chat completion with choices[0].message", line,
                              "response")
    return choices[0]["message"]


def parse_trace(spec: TaskSpec, row: Any, file: str, line: int) -> Trace:
    if not isinstance(row, dict):
        raise TaskFolderError(file, "each line must be a JSON object (an OpenAI chat request, with or without "
                              "its response)", line)
    if "messages" in row:
        field = "messages"
        input_text, answer = _split(spec, _messages(row["messages"], file, line, field), file, line, field)
        answer_field = "messages[-1]"
    elif isinstance(row.get("request"), dict):
        field = "request.messages"
        input_text, answer = _split(spec, _messages(row["request"].get("messages"), file, line, field),
                                    file, line, field)
        response = _response_message(row, file, line)
        answer_field = "response.choices[0].message" if response is not None else "request.messages[-1]"
        answer = response if response is not None else answer
    else:
        raise TaskFolderError(file, 'a trace needs "messages" or "request": {"messages": [...]}', line, "messages")
    context = row.get("context") or ""
    if not isinstance(context, str):
        raise TaskFolderError(file, 'field "context" must be a string (the passage)', line, "context")
    if spec.type == "qa-open-book" and not context.strip():
        raise TaskFolderError(file, 'field "context" is missing: open-book QA traces need the passage', line,
                              "context")
    trace = Trace(line=line, input=input_text, context=context)
    if answer is not None:
        try:
            trace.answer = check_output(spec, _answer_text(spec, answer, file, line, answer_field))
        except OutputError as exc:
            trace.answer_error = str(exc)
    return trace


def read_traces(spec: TaskSpec, path: Path, name: str = TRACES_FILE) -> list[Trace]:
    """Every trace of a traces.jsonl, strictly: the first bad line raises a TaskFolderError naming it."""
    traces: list[Trace] = []
    for item in iter_jsonl(path, skip_partial_tail=False):
        if item.error:
            raise TaskFolderError(name, item.error, item.line)
        if len(traces) == MAX_TRACES:
            raise TaskFolderError(name, f"has more than {MAX_TRACES} traces; sample it down (every trace is "
                                  "relabelled by the teacher)", item.line)
        traces.append(parse_trace(spec, item.value, name, item.line))
    if not traces:
        raise TaskFolderError(name, "is empty: give at least one trace, or leave the file out")
    return traces
