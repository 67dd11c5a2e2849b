"""How a task example is shown to the student: one chat, rendered with the student's own chat
template. Training, evaluation and serving all go through these functions, so the prompt the
student learned on is exactly the prompt it is served with (a train/serve template mismatch is
the classic way to break a fine-tuned model, tool calling above all)."""

from __future__ import annotations

import json
import re
from typing import Any

from services.common.taskspec import TaskSpec

_JSON_START = re.compile(r"[\[{]")


def system_prompt(spec: TaskSpec) -> str:
    """Short on purpose: a small student pays for every prompt token at train and serve time."""
    lines = [spec.description.strip()]
    if spec.type == "classification":
        lines.append("Answer with exactly one label: " + ", ".join(spec.labels) + ".")
    elif spec.type == "extraction":
        lines.append("Answer with one JSON object that follows this JSON Schema: "
                     + json.dumps(spec.output_schema, separators=(",", ":")))
    elif spec.type in ("tool-calling", "multi-turn-tool-calling"):
        tools = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in spec.tools]
        lines.append("Tools: " + json.dumps(tools, separators=(",", ":")))
        lines.append('Answer with a JSON list of calls [{"name": ..., "arguments": {...}}]'
                     + (", or [] when no tool fits." if spec.allow_no_call else "."))
    elif spec.type == "qa-open-book":
        lines.append("Answer the question from the passage, briefly.")
    else:
        lines.append("Answer briefly.")
    return "\n".join(lines)


def user_message(spec: TaskSpec, text: str, context: str = "") -> str:
    if spec.type == "qa-open-book" and context:
        return f"Passage: {context}\n\nQuestion: {text}"
    return text


def chat_messages(spec: TaskSpec, text: str, context: str = "") -> list[dict[str, str]]:
    """System + user turns (for multi-turn tool calling, the conversation itself)."""
    messages = [{"role": "system", "content": system_prompt(spec)}]
    if spec.type == "multi-turn-tool-calling":
        try:
            turns = json.loads(text)
        except json.JSONDecodeError:
            turns = None
        if isinstance(turns, list):
            for turn in turns:
                content = turn.get("content")
                messages.append({"role": str(turn.get("role", "user")),
                                 "content": content if isinstance(content, str) else json.dumps(content)})
            return messages
    messages.append({"role": "user", "content": user_message(spec, text, context)})
    return messages


def render_prompt(tokenizer: Any, spec: TaskSpec, text: str, context: str = "") -> str:
    """The prompt text up to where the student's answer starts."""
    return tokenizer.apply_chat_template(chat_messages(spec, text, context), tokenize=False,
                                         add_generation_prompt=True)


def answer_suffix(tokenizer: Any) -> str:
    """What closes an answer in the chat template (the eos text, e.g. ``<|im_end|>``)."""
    return tokenizer.eos_token or ""


def parse_answer(spec: TaskSpec, text: str) -> str:
    """Clean a raw completion into an answer: cut at the end-of-turn marker; for structured tasks
    keep the first complete JSON value (small models like to keep talking)."""
    for marker in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "</s>"):
        text = text.split(marker, 1)[0]
    text = text.strip()
    if spec.type in ("extraction", "tool-calling", "multi-turn-tool-calling"):
        match = _JSON_START.search(text)
        if match:
            try:
                value, _ = json.JSONDecoder().raw_decode(text[match.start():])
                return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            except json.JSONDecodeError:
                return text
    if spec.type == "classification":
        return text.splitlines()[0].strip() if text else text
    return text
