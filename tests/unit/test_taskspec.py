"""Task folders: every bad folder under tests/data/bad_tasks gets exactly its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import TaskFolderError
from services.common.taskspec import OutputError, TaskSpec, Tool, check_output, load_task

BAD = Path(__file__).parent.parent / "data" / "bad_tasks"
EXAMPLES = Path(__file__).parent.parent.parent / "examples"


@pytest.mark.parametrize("folder", sorted(p.name for p in BAD.iterdir() if p.is_dir()))
def test_bad_task_folder_gets_its_exact_message(folder: str) -> None:
    expected = (BAD / folder / "expected_error.txt").read_text().strip()
    with pytest.raises(TaskFolderError) as info:
        load_task(BAD / folder)
    assert str(info.value) == expected


@pytest.mark.parametrize("folder", sorted(p.name for p in EXAMPLES.iterdir() if (p / "task.yaml").exists()))
def test_every_example_task_loads(folder: str) -> None:
    bundle = load_task(EXAMPLES / folder)
    assert (len(bundle.seeds) >= 10 or len(bundle.traces) >= 10) and bundle.test
    assert not {s.id for s in bundle.seeds} & {t.id for t in bundle.test}


def test_missing_folder_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TaskFolderError, match="is not a directory"):
        load_task(tmp_path / "nope")
    with pytest.raises(TaskFolderError, match="task.yaml: missing"):
        load_task(tmp_path)


def test_tool_call_outputs_are_checked_against_the_tool_schema() -> None:
    spec = TaskSpec(name="t", type="tool-calling", description="d", allow_no_call=False, tools=[
        Tool("get_weather", "weather", {"type": "object", "properties": {"city": {"type": "string"},
             "unit": {"enum": ["c", "f"]}}, "required": ["city"]})])
    assert check_output(spec, [{"name": "get_weather", "arguments": {"city": "Oslo"}}]) == \
        '[{"name":"get_weather","arguments":{"city":"Oslo"}}]'
    with pytest.raises(OutputError, match=r"output\[0\].name \"get_time\" is not one of the tools"):
        check_output(spec, [{"name": "get_time", "arguments": {}}])
    with pytest.raises(OutputError, match=r"'city' is a required property"):
        check_output(spec, '[{"name": "get_weather", "arguments": {}}]')
    with pytest.raises(OutputError, match=r"unit: 'k' is not one of"):
        check_output(spec, [{"name": "get_weather", "arguments": {"city": "x", "unit": "k"}}])
    with pytest.raises(OutputError, match="allow_no_call: false"):
        check_output(spec, [])
    spec.allow_no_call = True
    assert check_output(spec, []) == "[]"


def test_a_schema_survives_the_proto_round_trip_with_integer_keywords() -> None:
    """Struct stores numbers as doubles; vLLM's grammar refuses ``minLength: 1.0``."""
    from services.common.convert import task_from_proto, task_to_proto

    spec = load_task(EXAMPLES / "conll-entities").spec
    back = task_from_proto(task_to_proto(spec))
    text = back.output_schema["properties"]["entities"]["items"]["properties"]["text"]
    assert text == {"type": "string", "minLength": 1} and isinstance(text["minLength"], int)
    assert back.output_schema == spec.output_schema
