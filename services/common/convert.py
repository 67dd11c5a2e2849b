"""Protobuf ⇄ plain Python conversions shared by every servicer (the only place, with the
servicers themselves, that knows about generated message classes)."""

from __future__ import annotations

import json
from typing import Any

from distillery.v1 import common_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from services.common.artifacts import Artifact
from services.common.errors import InvalidArgument
from services.common.taskspec import TaskSpec, Tool

TASK_TYPE_TO_PROTO = {
    "classification": common_pb2.TASK_TYPE_CLASSIFICATION,
    "extraction": common_pb2.TASK_TYPE_EXTRACTION,
    "qa-open-book": common_pb2.TASK_TYPE_QA_OPEN_BOOK,
    "qa-closed-book": common_pb2.TASK_TYPE_QA_CLOSED_BOOK,
    "tool-calling": common_pb2.TASK_TYPE_TOOL_CALLING,
    "multi-turn-tool-calling": common_pb2.TASK_TYPE_MULTI_TURN_TOOL_CALLING,
}
TASK_TYPE_FROM_PROTO = {v: k for k, v in TASK_TYPE_TO_PROTO.items()}


def struct_from(value: dict[str, Any] | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    if value:
        message.update(value)
    return message


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message) if message is not None else {}


def schema_from_struct(message: struct_pb2.Struct) -> dict[str, Any]:
    """A JSON Schema back from a Struct. Struct keeps every number as a double, but keywords such
    as ``minLength`` or ``maxItems`` must be integers (structured-output grammars refuse 1.0), so
    integral numbers come back as ints."""
    def restore(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    return restore(struct_to_dict(message))


def schema_json(schema: dict[str, Any] | None) -> str:
    """A JSON Schema as text for the ``*_json`` twins of Struct fields: unlike a Struct (a map, whose
    key order differs from process to process) it keeps the order of ``properties``, which is the
    order a grammar-constrained teacher or student writes the fields in."""
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":")) if schema else ""


def schema_from_json(text: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{field}: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field}: a JSON Schema must be an object, got {type(value).__name__}")
    return value


def artifact_to_proto(artifact: Artifact | dict[str, Any] | None) -> common_pb2.ArtifactRef:
    if artifact is None:
        return common_pb2.ArtifactRef()
    if isinstance(artifact, dict):
        artifact = Artifact.from_dict(artifact)
    return common_pb2.ArtifactRef(uri=artifact.uri, sha256=artifact.sha256, size=artifact.size)


def artifact_from_proto(message: common_pb2.ArtifactRef) -> Artifact | None:
    if not message.uri:
        return None
    return Artifact(uri=message.uri, sha256=message.sha256, size=message.size)


def task_to_proto(spec: TaskSpec) -> common_pb2.TaskSpec:
    return common_pb2.TaskSpec(
        name=spec.name,
        type=TASK_TYPE_TO_PROTO[spec.type],
        description=spec.description,
        labels=spec.labels,
        label_descriptions=spec.label_descriptions,
        output_schema=struct_from(spec.output_schema),
        output_schema_json=schema_json(spec.output_schema),
        tools=[common_pb2.ToolSchema(name=t.name, description=t.description, parameters=struct_from(t.parameters),
                                     parameters_json=schema_json(t.parameters))
               for t in spec.tools],
        allow_no_call=spec.allow_no_call,
        input_description=spec.input_description,
        judge_instructions=spec.judge_instructions,
        topics=spec.topics,
        teacher=common_pb2.ModelRef(uri=spec.teacher),
        student=common_pb2.ModelRef(uri=spec.student),
        settings=struct_from(spec.settings),
    )


def task_from_proto(message: common_pb2.TaskSpec) -> TaskSpec:
    from services.common.errors import InvalidArgument

    if message.type not in TASK_TYPE_FROM_PROTO:
        raise InvalidArgument("task.type is missing or unknown; set one of " + ", ".join(TASK_TYPE_TO_PROTO))
    schema = (schema_from_json(message.output_schema_json, "task.output_schema_json") if message.output_schema_json
              else schema_from_struct(message.output_schema) if message.HasField("output_schema") else None)
    return TaskSpec(
        name=message.name or "task",
        type=TASK_TYPE_FROM_PROTO[message.type],
        description=message.description,
        labels=list(message.labels),
        label_descriptions=dict(message.label_descriptions),
        output_schema=schema or None,
        tools=[Tool(t.name, t.description,
                    schema_from_json(t.parameters_json, f"task.tools[{i}].parameters_json") if t.parameters_json
                    else schema_from_struct(t.parameters))
               for i, t in enumerate(message.tools)],
        allow_no_call=message.allow_no_call,
        input_description=message.input_description,
        judge_instructions=message.judge_instructions,
        topics=list(message.topics),
        teacher=message.teacher.uri or TaskSpec.__dataclass_fields__["teacher"].default,
        student=message.student.uri or TaskSpec.__dataclass_fields__["student"].default,
        settings=struct_to_dict(message.settings),
    )


def message_to_dict(message: Message) -> dict[str, Any]:
    """Proto → JSON-able dict with the proto field names (what operations persist)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def dict_to_message(data: dict[str, Any], message: Message) -> Message:
    """Lenient: unknown fields are dropped. Only for records an older version wrote (the caller
    logs what was dropped); everything else goes through ``message_from_record``."""
    return json_format.ParseDict(data, message, ignore_unknown_fields=True)


def message_from_record(data: dict[str, Any], message: Message) -> Message:
    """A job's stored proto-JSON record back into its message. Strict: a field the message lacks
    is an InvalidArgument naming it, never dropped."""
    try:
        return json_format.ParseDict(data, message)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"{message.DESCRIPTOR.name}: {exc}") from None
