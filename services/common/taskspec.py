"""Task folders (task.yaml + seeds.jsonl + test.jsonl [+ context.jsonl]) parsed into a TaskSpec.

Every problem is reported with the file, the line and the field, e.g.
``seeds.jsonl:7: output "positiv" is not one of the labels [positive, negative]``.
The output checks here are also the validator's format filter, so a row is judged the same way
in a seed file and in generated data."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from services.common.errors import TaskFolderError
from services.common.jsonl import iter_jsonl

TASK_TYPES: tuple[str, ...] = (
    "classification", "extraction", "qa-open-book", "qa-closed-book", "tool-calling", "multi-turn-tool-calling",
)
TOOL_TASKS = frozenset({"tool-calling", "multi-turn-tool-calling"})
MIN_SEEDS = 10
SETTINGS_SECTIONS = ("traces", "generation", "validation", "training", "evaluation", "serving")
DEFAULT_TEACHER = "gemma3-270m"
DEFAULT_STUDENT = "smollm2-135m-instruct"
_KNOWN_KEYS = {
    "name", "type", "description", "labels", "output_schema", "tools", "allow_no_call", "input_description",
    "judge_instructions", "topics", "teacher", "student", *SETTINGS_SECTIONS,
}


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass
class TaskSpec:
    name: str
    type: str
    description: str
    labels: list[str] = field(default_factory=list)
    label_descriptions: dict[str, str] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    tools: list[Tool] = field(default_factory=list)
    allow_no_call: bool = False
    input_description: str = ""
    judge_instructions: str = ""
    topics: list[str] = field(default_factory=list)
    teacher: str = DEFAULT_TEACHER
    student: str = DEFAULT_STUDENT
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.settings.get(name) or {})

    @property
    def is_structured(self) -> bool:
        return self.type in ("extraction", *TOOL_TASKS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        data = dict(data)
        data["tools"] = [Tool(**tool) if isinstance(tool, dict) else tool for tool in data.get("tools", [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Example:
    input: str
    output: str
    context: str = ""
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = example_id(self.input, self.context)

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "input": self.input, "output": self.output}
        if self.context:
            row["context"] = self.context
        if self.metadata:
            row["metadata"] = self.metadata
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Example:
        return cls(input=str(row.get("input", "")), output=str(row.get("output", "")),
                   context=str(row.get("context") or ""), id=str(row.get("id") or ""),
                   metadata=dict(row.get("metadata") or {}))


@dataclass
class TaskBundle:
    """A parsed task folder."""

    root: Path
    spec: TaskSpec
    seeds: list[Example]
    test: list[Example]
    context: list[str]
    # traces.jsonl's lines (services.common.traces.Trace): production requests the pipeline
    # curates, relabels and splits into more seeds (and the test set when test.jsonl is absent).
    traces: list[Any] = field(default_factory=list)


def example_id(text: str, context: str = "") -> str:
    return hashlib.sha256(f"{context}\x00{text}".encode()).hexdigest()[:16]


def normalize_text(text: str) -> str:
    """Case, whitespace and punctuation folded: the key for exact-duplicate detection."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def topic_texts(spec: TaskSpec, seed_inputs: list[str]) -> list[str]:
    """What the task is about, as texts to measure topicality against: the description, input
    description, topics, each label with its description, the seed inputs."""
    texts = [spec.description, spec.input_description, *spec.topics]
    texts += [f"{label} {spec.label_descriptions.get(label, '')}" for label in spec.labels]
    texts += seed_inputs
    return [t for t in texts if t and t.strip()]


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _validator_for(schema_json: str) -> jsonschema.Draft202012Validator:
    """Compiled validators, cached: building one costs far more than validating a row."""
    return jsonschema.Draft202012Validator(json.loads(schema_json))


def schema_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return _validator_for(json.dumps(schema, sort_keys=True))


class OutputError(ValueError):
    """An output that does not fit the task; the message names the field."""


def _type_name(value: Any) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", list: "list", dict: "object",
            type(None): "null"}.get(type(value), type(value).__name__)


def check_output(spec: TaskSpec, output: Any) -> str:
    """Check one output against the task and return its canonical text; raise OutputError."""
    if spec.type == "classification":
        if not isinstance(output, str):
            raise OutputError(f"output must be a label string, got {_type_name(output)}")
        label = output.strip()
        if label not in spec.labels:
            raise OutputError(f'output "{label}" is not one of the labels [{", ".join(spec.labels)}]')
        return label
    if spec.type == "extraction":
        value = _parse_json_output(output)
        if not isinstance(value, dict):
            raise OutputError(f"output must be a JSON object, got {_type_name(value)}")
        if spec.output_schema:
            error = jsonschema.exceptions.best_match(schema_validator(spec.output_schema).iter_errors(value))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                raise OutputError(f"output field {where}: {error.message}")
        return canonical_json(value)
    if spec.type in TOOL_TASKS:
        calls = _parse_json_output(output)
        if isinstance(calls, dict):
            calls = [calls]
        if not isinstance(calls, list):
            raise OutputError(f"output must be a list of tool calls, got {_type_name(calls)}")
        if not calls and not spec.allow_no_call:
            raise OutputError("output is an empty list (no call) but the task sets allow_no_call: false")
        tools = {tool.name: tool for tool in spec.tools}
        normalized = []
        for index, call in enumerate(calls):
            if not isinstance(call, dict) or "name" not in call:
                raise OutputError(f'output[{index}] must be an object with "name" and "arguments"')
            name = call["name"]
            if name not in tools:
                raise OutputError(f'output[{index}].name "{name}" is not one of the tools [{", ".join(tools)}]')
            arguments = call.get("arguments", {})
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError as exc:
                    raise OutputError(f"output[{index}].arguments is not valid JSON: {exc.msg}") from None
            if not isinstance(arguments, dict):
                raise OutputError(f"output[{index}].arguments must be an object, got {_type_name(arguments)}")
            error = jsonschema.exceptions.best_match(schema_validator(tools[name].parameters or {}).iter_errors(arguments))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                raise OutputError(f"output[{index}].arguments {where}: {error.message}")
            normalized.append({"name": name, "arguments": arguments})
        return canonical_json(normalized)
    # QA: free text.
    if not isinstance(output, str):
        raise OutputError(f"output must be a string, got {_type_name(output)}")
    if not output.strip():
        raise OutputError("output is empty")
    return output.strip()


def _parse_json_output(output: Any) -> Any:
    if isinstance(output, str):
        try:
            return json.loads(output)
        except json.JSONDecodeError as exc:
            raise OutputError(f"output is not valid JSON: {exc.msg} (column {exc.colno})") from None
    return output


def _input_text(spec: TaskSpec, value: Any, file: str, line: int) -> str:
    if spec.type == "multi-turn-tool-calling":
        if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
            return canonical_json(value)
        if isinstance(value, str):
            return value
        raise TaskFolderError(file, "input must be a list of chat messages with a role each", line, "input")
    if not isinstance(value, str):
        raise TaskFolderError(file, f"field \"input\" must be a string, got {_type_name(value)}", line, "input")
    if not value.strip():
        raise TaskFolderError(file, "field \"input\" is empty", line, "input")
    return value


def parse_task_yaml(path: Path) -> TaskSpec:
    file = path.name
    if not path.is_file():
        raise TaskFolderError(file, f"missing: a task folder needs {file} (see `distillery init`)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise TaskFolderError(file, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                              mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise TaskFolderError(file, "must be a mapping of settings (type, description, ...)")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise TaskFolderError(file, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN_KEYS))}")
    task_type = data.get("type")
    if task_type not in TASK_TYPES:
        raise TaskFolderError(file, f'type "{task_type}" is not a task type; choose one of {", ".join(TASK_TYPES)}',
                              field="type")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise TaskFolderError(file, "field \"description\" is missing: describe the task in a sentence or two",
                              field="description")
    labels: list[str] = []
    label_descriptions: dict[str, str] = {}
    raw_labels = data.get("labels")
    if task_type == "classification":
        if isinstance(raw_labels, dict):
            labels = [str(k) for k in raw_labels]
            label_descriptions = {str(k): str(v or "") for k, v in raw_labels.items()}
        elif isinstance(raw_labels, list) and all(isinstance(x, (str, int)) for x in raw_labels):
            labels = [str(x) for x in raw_labels]
        if len(labels) < 2:
            raise TaskFolderError(file, "a classification task needs \"labels\": a list (or mapping to descriptions) "
                                  "of at least two labels", field="labels")
        if len(set(labels)) != len(labels):
            raise TaskFolderError(file, "field \"labels\" lists a label twice", field="labels")
    output_schema = data.get("output_schema")
    if task_type == "extraction":
        if not isinstance(output_schema, dict):
            raise TaskFolderError(file, "an extraction task needs \"output_schema\": a JSON Schema of the output object",
                                  field="output_schema")
        try:
            jsonschema.Draft202012Validator.check_schema(output_schema)
        except jsonschema.SchemaError as exc:
            raise TaskFolderError(file, f"output_schema is not a valid JSON Schema: {exc.message}",
                                  field="output_schema") from None
    tools: list[Tool] = []
    if task_type in TOOL_TASKS:
        raw_tools = data.get("tools")
        if not isinstance(raw_tools, list) or not raw_tools:
            raise TaskFolderError(file, "a tool-calling task needs \"tools\": a list of OpenAI-style function schemas",
                                  field="tools")
        for index, raw in enumerate(raw_tools):
            fn = raw.get("function", raw) if isinstance(raw, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise TaskFolderError(file, f"tools[{index}] needs a \"name\"", field=f"tools[{index}]")
            params = fn.get("parameters") or {"type": "object", "properties": {}}
            try:
                jsonschema.Draft202012Validator.check_schema(params)
            except jsonschema.SchemaError as exc:
                raise TaskFolderError(file, f"tools[{index}].parameters is not a valid JSON Schema: {exc.message}",
                                      field=f"tools[{index}].parameters") from None
            tools.append(Tool(fn["name"], str(fn.get("description", "")), params))
    settings: dict[str, dict[str, Any]] = {}
    for section in SETTINGS_SECTIONS:
        value = data.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise TaskFolderError(file, f"section \"{section}\" must be a mapping", field=section)
        settings[section] = value
    return TaskSpec(
        name=str(data.get("name") or path.parent.name),
        type=task_type,
        description=description.strip(),
        labels=labels,
        label_descriptions=label_descriptions,
        output_schema=output_schema if task_type == "extraction" else None,
        tools=tools,
        allow_no_call=bool(data.get("allow_no_call", False)),
        input_description=str(data.get("input_description") or ""),
        judge_instructions=str(data.get("judge_instructions") or ""),
        topics=[str(t) for t in data.get("topics") or []],
        teacher=str(data.get("teacher") or DEFAULT_TEACHER),
        student=str(data.get("student") or DEFAULT_STUDENT),
        settings=settings,
    )


def parse_examples(spec: TaskSpec, path: Path, name: str | None = None) -> list[Example]:
    """Parse a seeds/test JSONL strictly: the first bad line raises a TaskFolderError naming it."""
    file = name or path.name
    if not path.is_file():
        raise TaskFolderError(file, "missing: a task folder needs seeds.jsonl and test.jsonl")
    examples: list[Example] = []
    for item in iter_jsonl(path, skip_partial_tail=False):
        if item.error:
            raise TaskFolderError(file, item.error, item.line)
        row = item.value
        if not isinstance(row, dict):
            raise TaskFolderError(file, f"each line must be a JSON object, got {_type_name(row)}", item.line)
        for required in ("input", "output"):
            if required not in row:
                raise TaskFolderError(file, f'field "{required}" is missing', item.line, required)
        text = _input_text(spec, row["input"], file, item.line)
        try:
            output = check_output(spec, row["output"])
        except OutputError as exc:
            raise TaskFolderError(file, str(exc), item.line, "output") from None
        context = row.get("context") or ""
        if spec.type == "qa-open-book" and not (isinstance(context, str) and context.strip()):
            raise TaskFolderError(file, 'field "context" is missing: open-book QA needs the passage', item.line,
                                  "context")
        # A row's own metadata is kept (e.g. "source": "trace" on seeds the traces stage made).
        metadata = row["metadata"] if isinstance(row.get("metadata"), dict) else {}
        examples.append(Example(input=text, output=output, context=str(context),
                                metadata={**metadata, "line": item.line}))
    return examples


def load_task(folder: Path, min_seeds: int = MIN_SEEDS) -> TaskBundle:
    """A task folder, strictly parsed. With a traces.jsonl beside task.yaml, seeds.jsonl and
    test.jsonl become optional: the pipeline turns the traces into seeds and, without a test.jsonl,
    into the held-out test set too."""
    from services.common.traces import TRACES_FILE, read_traces

    folder = Path(folder)
    if not folder.is_dir():
        raise TaskFolderError(str(folder), "is not a directory: give a task folder with task.yaml, seeds.jsonl, test.jsonl")
    spec = parse_task_yaml(folder / "task.yaml")
    traces = read_traces(spec, folder / TRACES_FILE) if (folder / TRACES_FILE).exists() else []
    has_seeds = (folder / "seeds.jsonl").exists() or not traces
    seeds = parse_examples(spec, folder / "seeds.jsonl") if has_seeds else []
    if has_seeds and len(seeds) < min_seeds and not traces:
        raise TaskFolderError("seeds.jsonl", f"has {len(seeds)} seed example(s); at least {min_seeds} are needed "
                              f"so the teacher sees the task's variety (10-50 is typical), or give a traces.jsonl")
    seen: dict[str, int] = {}
    for seed in seeds:
        key = normalize_text(seed.context + " " + seed.input)
        if key in seen:
            raise TaskFolderError("seeds.jsonl", f"input duplicates line {seen[key]}; each seed must be different",
                                  seed.metadata["line"], "input")
        seen[key] = seed.metadata["line"]
    has_test = (folder / "test.jsonl").exists() or not traces
    test = parse_examples(spec, folder / "test.jsonl") if has_test else []
    if has_test and not test:
        raise TaskFolderError("test.jsonl", "is empty: the held-out test set needs at least one example")
    test_index = {normalize_text(ex.context + " " + ex.input): ex.metadata["line"] for ex in test}
    for seed in seeds:
        key = normalize_text(seed.context + " " + seed.input)
        if key in test_index:
            raise TaskFolderError("seeds.jsonl", f"input also appears in test.jsonl:{test_index[key]}; a seed in the "
                                  "held-out test set would inflate the evaluation", seed.metadata["line"], "input")
    context_path = folder / "context.jsonl"
    context = read_context(context_path) if context_path.exists() else []
    return TaskBundle(root=folder, spec=spec, seeds=seeds, test=test, context=context, traces=traces)


def read_context(path: Path) -> list[str]:
    """context.jsonl: one passage per line, a JSON string or an object with "text" (every line
    kept as written; a bad line is a TaskFolderError naming it)."""
    passages: list[str] = []
    for item in iter_jsonl(path, skip_partial_tail=False):
        if item.error:
            raise TaskFolderError("context.jsonl", item.error, item.line)
        value = item.value
        text = value.get("text") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise TaskFolderError("context.jsonl", 'each line must be a string or an object with "text"',
                                  item.line, "text")
        passages.append(text)
    return passages
