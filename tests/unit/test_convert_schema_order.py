"""A task's JSON Schema keeps its property order across gRPC. A Struct is a map, and the order its
keys come back in differs from process to process (observed: 4 of 6 processes read CoNLL's
{"text", "type"} as {"type", "text"}); the grammar-constrained teacher then wrote "type" first,
unlike every seed, and its entity F1 fell from 0.06 to 0.00. The schema now also travels as JSON text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from distillery.v1 import common_pb2

from services.common.convert import task_from_proto, task_to_proto
from services.common.errors import InvalidArgument
from services.common.taskspec import TaskSpec, Tool, load_task
from tests.conftest import REPO

READ_ORDER = """
import json, sys
from distillery.v1 import common_pb2
from services.common.convert import task_from_proto
message = common_pb2.TaskSpec()
message.ParseFromString(sys.stdin.buffer.read())
spec = task_from_proto(message)
print(json.dumps([list(spec.output_schema["properties"]["entities"]["items"]["properties"]),
                  list(spec.output_schema), list(spec.tools[0].parameters["properties"])]))
"""


def _spec() -> TaskSpec:
    spec = load_task(REPO / "examples" / "conll-entities").spec
    spec.tools = [Tool("book", "Book a table.", {"type": "object", "properties": {
        "restaurant": {"type": "string"}, "people": {"type": "integer"}, "date": {"type": "string"}}})]
    return spec


def test_property_order_survives_other_processes() -> None:
    spec = _spec()
    wire = task_to_proto(spec).SerializeToString()
    expected = [["text", "type"], list(spec.output_schema), ["restaurant", "people", "date"]]
    for _ in range(6):  # each process hashes map keys its own way
        done = subprocess.run([sys.executable, "-c", READ_ORDER], input=wire, capture_output=True, cwd=REPO,
                              check=True)
        assert json.loads(done.stdout) == expected


def test_a_client_that_sends_only_the_struct_still_works() -> None:
    spec = _spec()
    message = task_to_proto(spec)
    message.output_schema_json = ""
    for tool in message.tools:
        tool.parameters_json = ""
    back = task_from_proto(message)
    assert back.output_schema == spec.output_schema  # same schema; only the order is not promised
    assert back.tools[0].parameters == spec.tools[0].parameters


@pytest.mark.parametrize(("text", "why"), [("{not json", "not valid JSON"), ("[1, 2]", "must be an object")])
def test_a_broken_schema_text_names_the_field(text: str, why: str) -> None:
    message = task_to_proto(_spec())
    message.output_schema_json = text
    with pytest.raises(InvalidArgument, match=f"task.output_schema_json: .*{why}"):
        task_from_proto(message)
    message = task_to_proto(_spec())
    message.tools[0].parameters_json = text
    with pytest.raises(InvalidArgument, match=rf"task.tools\[0\].parameters_json: .*{why}"):
        task_from_proto(message)


def test_no_schema_stays_none() -> None:
    spec = load_task(REPO / "examples" / "news-topic").spec
    message = task_to_proto(spec)
    assert message.output_schema_json == ""
    assert task_from_proto(message).output_schema is None
    assert isinstance(common_pb2.TaskSpec.FromString(message.SerializeToString()), common_pb2.TaskSpec)
