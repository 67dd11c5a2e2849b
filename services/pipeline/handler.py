"""Job handlers of the pipeline service: the stored StartDistillation/StartRetune request → a
DistillationRunner over typed objects (TaskSpec, Artifacts, settings)."""

from __future__ import annotations

from typing import Any

from services.common.artifacts import Artifact
from services.common.convert import task_from_record
from services.common.errors import InvalidArgument, NotFound
from services.common.jobs import JobRunner, OperationContext
from services.pipeline.orchestrator import DistillationRunner, deep_merge
from services.pipeline.stages import PipelineState, StateFile
from services.pipeline.workers import Workers

DISTILLATION = "distillation"
RETUNE = "retune"


def _artifact(data: dict[str, Any] | None) -> Artifact | None:
    return Artifact.from_dict(data) if data and data.get("uri") else None


def job_state(runner: JobRunner, name: str) -> PipelineState:
    record = runner.ops.get(name)
    state = StateFile(runner.work_root / record.short_id / "state.json").load()
    if state is None:
        state = PipelineState.new(record.name, str(record.request.get("task", {}).get("name", "")))
        state.state = record.state
    if record.state in ("FAILED", "CANCELLED") and state.state not in ("FAILED", "CANCELLED"):
        state.state = record.state
        state.message = record.error_message or state.message
    return state


def _find_job(runner: JobRunner, ref: str) -> str:
    if "/" in ref:
        return ref
    for record in runner.ops.list(service="pipeline", limit=10_000):
        if record.short_id == ref or record.short_id.startswith(ref):
            return record.name
    raise NotFound(f"no job {ref!r}; `distillery jobs` lists them")


def make_handlers(runner: JobRunner, workers: Workers) -> None:
    def distill(ctx: OperationContext) -> dict[str, Any]:
        request = ctx.request
        if not request.get("task"):
            raise InvalidArgument("task is required")
        spec = task_from_record(request["task"])
        inputs = {k: _artifact(request.get(k)) for k in ("seeds", "test", "context")}
        for required in ("seeds", "test"):
            if inputs[required] is None:
                raise InvalidArgument(f"{required} is required (an ArtifactRef to {required}.jsonl in the store)")
        return DistillationRunner(ctx, workers, spec, inputs, request.get("overrides") or {}).run()

    def retune(ctx: OperationContext) -> dict[str, Any]:
        request = ctx.request
        source_name = _find_job(runner, str(request.get("job", "")))
        source = runner.ops.get(source_name)
        base = dict(source.request)
        spec = task_from_record(base["task"])
        if request.get("student", {}).get("uri"):
            spec.student = request["student"]["uri"]
        inputs = {k: _artifact(base.get(k)) for k in ("seeds", "test", "context")}
        new = request.get("overrides") or {}
        overrides = deep_merge(base.get("overrides") or {}, new)
        # New validation settings mean the generated rows are validated again; otherwise the
        # validated rows are reused as they are.
        reuse = ("generate",) if new.get("validation") else ("generate", "validate")
        return DistillationRunner(ctx, workers, spec, inputs, overrides, retune_of=job_state(runner, source_name),
                                  reuse=reuse).run()

    runner.register(DISTILLATION, distill)
    runner.register(RETUNE, retune)
