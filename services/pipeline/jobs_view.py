"""PipelineState → the Job message's JSON shape (shared by the orchestrator's result and GetJob)."""

from __future__ import annotations

from typing import Any

from services.pipeline.stages import PipelineState

_STAGE_STATE = {"PENDING": "STAGE_STATE_PENDING", "RUNNING": "STAGE_STATE_RUNNING",
                "SUCCEEDED": "STAGE_STATE_SUCCEEDED", "FAILED": "STAGE_STATE_FAILED", "SKIPPED": "STAGE_STATE_SKIPPED"}


def job_to_dict(state: PipelineState) -> dict[str, Any]:
    return {
        "name": state.name,
        "task_name": state.task_name,
        "state": state.state,
        "message": state.message,
        "student_teacher_ratio": state.student_teacher_ratio,
        "report": state.report or {},
        "served_model": state.served_model,
        "warnings": list(state.warnings),
        "deployed_student": state.deployed_student,
        "stages": [{"name": s.name, "state": _STAGE_STATE[s.state], "operation": s.operation,
                    "artifacts": {k: v for k, v in s.artifacts.items() if isinstance(v, dict)},
                    "error": s.error, "summary": _jsonable(s.summary)} for s in state.stages],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
