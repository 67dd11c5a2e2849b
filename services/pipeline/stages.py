"""The distillation job as a persisted state machine of named stages (distilabel-style: a rerun
picks up where it stopped).

Each stage is started on its worker service with a request_id derived from the job and stage
name, so starting it again after a crash returns the SAME worker operation instead of a second
one; a stage whose result is recorded is never redone. The state file is rewritten atomically
after every transition."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.common.atomic import write_json_atomic

STAGES: tuple[str, ...] = ("traces", "generate", "validate", "train", "train_seed_only", "evaluate", "export", "deploy")

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED"
JOB_NEEDS_ATTENTION = "NEEDS_ATTENTION"


@dataclass
class StageState:
    name: str
    state: str = PENDING
    operation: str = ""
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class PipelineState:
    name: str
    task_name: str
    state: str = PENDING
    message: str = ""
    stages: list[StageState] = field(default_factory=list)
    student_teacher_ratio: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)
    served_model: str = ""
    # Things the user must know although the job went on (thin labels, a weak teacher, the
    # seed-only student deployed instead of the trained one).
    warnings: list[str] = field(default_factory=list)
    # "student" or "seed-only-student": which trained student the export/deploy stages use.
    deployed_student: str = ""
    deployed_note: str = ""
    # A retune's snapshot of its source job's review decisions (services.pipeline.review), taken
    # when the retune started: editing the source's review later does not change a running retune.
    review: dict[str, Any] = field(default_factory=dict)

    def stage(self, name: str) -> StageState:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @classmethod
    def new(cls, name: str, task_name: str) -> PipelineState:
        return cls(name=name, task_name=task_name, stages=[StageState(s) for s in STAGES])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineState:
        stored = {s["name"]: StageState(**s) for s in data.get("stages", [])}
        # A job written before a stage existed (the traces stage) did not need it: SKIPPED.
        stages = [stored.get(name) or StageState(name, state=SKIPPED) for name in STAGES]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in data.items() if k in known}, "stages": stages})


class StateFile:
    """The job's state on disk, replaced atomically (write temp, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> PipelineState | None:
        if not self.path.exists():
            return None
        return PipelineState.from_dict(json.loads(self.path.read_text()))

    def save(self, state: PipelineState) -> None:
        write_json_atomic(self.path, state.to_dict())
