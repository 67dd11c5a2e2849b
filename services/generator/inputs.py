"""Reading what a request points at: its seeds and context rows in the artifact store, and the
checks a task must pass before a teacher sees it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.common.artifacts import Artifact, ArtifactStore
from services.common.errors import InvalidArgument, TaskFolderError
from services.common.taskspec import Example, TaskSpec, parse_examples, read_context


def check_task(spec: TaskSpec) -> None:
    if spec.type == "classification" and len(spec.labels) < 2:
        raise InvalidArgument("task.labels: a classification task needs at least two labels")
    if spec.type in ("tool-calling", "multi-turn-tool-calling") and not spec.tools:
        raise InvalidArgument("task.tools: a tool-calling task needs at least one tool")


def load_seeds(store: ArtifactStore, artifact: Artifact | None, spec: TaskSpec, work_dir: Path,
               required: bool = True) -> list[Example]:
    """Seeds from the store, checked like a task folder's seeds.jsonl (errors name the line)."""
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


def load_context(store: ArtifactStore, artifact: Artifact | None, work_dir: Path) -> list[str]:
    """context.jsonl: one passage per line, a JSON string or an object with "text"."""
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
