"""Job handlers of the pipeline service: the stored StartDistillation/StartRetune request → a
DistillationRunner over typed objects (TaskSpec, Artifacts, settings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from services.common.artifacts import Artifact
from services.common.errors import FailedPrecondition, NotFound
from services.common.jobs import JobRunner, OperationContext
from services.common.taskspec import TaskSpec
from services.pipeline.orchestrator import DistillationRunner, deep_merge
from services.pipeline.review import decisions_of
from services.pipeline.stages import PipelineState, StateFile
from services.pipeline.workers import Workers

DISTILLATION = "distillation"
RETUNE = "retune"


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


@dataclass
class DistillationRequest:
    """A distillation job, as its request asks for it (read by the servicer module)."""

    spec: TaskSpec
    seeds: Artifact | None  # None only with traces: the traces stage writes the seeds
    test: Artifact | None  # None only with traces: the traces stage holds some out as the test set
    context: Artifact | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # `--set` sections over task.yaml's
    traces: Artifact | None = None

    def inputs(self) -> dict[str, Artifact | None]:
        return {"seeds": self.seeds, "test": self.test, "context": self.context, "traces": self.traces}


@dataclass
class RetuneRequest:
    """A retune of an earlier job: its data again, with new settings (and maybe another student)."""

    job: str  # the job whose generated (and validated) data to reuse
    student: str = ""  # another student, or "" for the source job's
    overrides: dict[str, Any] = field(default_factory=dict)


def job_request(runner: JobRunner, name: str, distillation_from: Callable[[dict[str, Any]], DistillationRequest],
                retune_from: Callable[[dict[str, Any]], RetuneRequest], depth: int = 0) -> DistillationRequest:
    """What a job distils, as one DistillationRequest: a distillation's own request; a retune's
    source (followed through retunes of retunes) with the retune's student and settings on top."""
    record = runner.ops.get(name)
    if record.kind != RETUNE:
        return distillation_from(record.request)
    if depth > 50:
        raise FailedPrecondition(f"job {name}: its chain of retunes is longer than 50 jobs")
    retune = retune_from(record.request)
    base = job_request(runner, _find_job(runner, retune.job), distillation_from, retune_from, depth + 1)
    spec = replace(base.spec, student=retune.student) if retune.student else base.spec
    return replace(base, spec=spec, overrides=deep_merge(base.overrides, retune.overrides))


def make_handlers(runner: JobRunner, workers: Workers, distillation_from: Callable[[dict[str, Any]], DistillationRequest],
                  retune_from: Callable[[dict[str, Any]], RetuneRequest]) -> None:
    """Register the pipeline's two job kinds; ``*_from`` read a stored request (the servicer's converters)."""
    def distill(ctx: OperationContext) -> dict[str, Any]:
        request = distillation_from(ctx.request)
        return DistillationRunner(ctx, workers, request.spec, request.inputs(), request.overrides).run()

    def retune(ctx: OperationContext) -> dict[str, Any]:
        request = retune_from(ctx.request)
        source_name = _find_job(runner, request.job)
        base = job_request(runner, source_name, distillation_from, retune_from)
        spec = replace(base.spec, student=request.student) if request.student else base.spec
        overrides = deep_merge(base.overrides, request.overrides)
        # New validation settings mean the generated rows are validated again; otherwise the
        # validated rows are reused as they are.
        reuse = ("traces", "generate") if request.overrides.get("validation") else ("traces", "generate", "validate")
        source = job_state(runner, source_name)
        # The source's review (decisions by hand) goes with its data; the runner freezes it.
        review = decisions_of(runner.work_root / runner.ops.get(source_name).short_id, source)
        return DistillationRunner(ctx, workers, spec, base.inputs(), overrides, retune_of=source, reuse=reuse,
                                  review=review).run()

    runner.register(DISTILLATION, distill)
    runner.register(RETUNE, retune)
