"""Reading what a request points at: the task, its seeds and context rows in the artifact store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.common.artifacts import Artifact, ArtifactStore
from services.common.errors import InvalidArgument, TaskFolderError
from services.common.taskspec import Example, TaskSpec, parse_examples, read_context


def task_from_request(task: dict[str, Any] | None) -> TaskSpec:
    """The request's TaskSpec (as persisted: a proto-field-name dict) → TaskSpec."""

    from services.common.convert import task_from_record

    if not task:
        raise InvalidArgument("task is missing: send the TaskSpec (type, description, labels/schema/tools)")
    spec = task_from_record(task)
    check_task(spec)
    return spec


def check_task(spec: TaskSpec) -> None:
    if spec.type == "classification" and len(spec.labels) < 2:
        raise InvalidArgument("task.labels: a classification task needs at least two labels")
    if spec.type in ("tool-calling", "multi-turn-tool-calling") and not spec.tools:
        raise InvalidArgument("task.tools: a tool-calling task needs at least one tool")


def artifact_of(ref: dict[str, Any] | None) -> Artifact | None:
    if not ref or not ref.get("uri"):
        return None
    return Artifact.from_dict(ref)


def load_seeds(store: ArtifactStore, ref: dict[str, Any] | None, spec: TaskSpec, work_dir: Path,
               required: bool = True) -> list[Example]:
    """Seeds from the store, checked like a task folder's seeds.jsonl (errors name the line)."""
    artifact = artifact_of(ref)
    if artifact is None:
        if required:
            raise InvalidArgument("seeds is missing: give the ArtifactRef of seeds.jsonl")
        return []
    path = work_dir / "seeds.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(store.read_bytes(artifact))
    seeds = parse_examples(spec, path, name="seeds.jsonl")
    if required and not seeds:
        raise TaskFolderError("seeds.jsonl", "is empty: generation needs seed examples to show the teacher")
    return seeds


def load_context(store: ArtifactStore, ref: dict[str, Any] | None, work_dir: Path) -> list[str]:
    """context.jsonl: one passage per line, a JSON string or an object with "text"."""
    artifact = artifact_of(ref)
    if artifact is None:
        return []
    path = work_dir / "context.jsonl"
    path.write_bytes(store.read_bytes(artifact))
    return [text.strip() for text in read_context(path) if text.strip()]


def examples_from_request(rows: list[dict[str, Any]]) -> list[Example]:
    out = []
    for row in rows:
        metadata = row.get("metadata") or {}
        out.append(Example(input=str(row.get("input", "")), output=str(row.get("output", "")),
                           context=str(row.get("context") or ""), id=str(row.get("id") or ""),
                           metadata=dict(metadata) if isinstance(metadata, dict) else json.loads(metadata)))
    return out
