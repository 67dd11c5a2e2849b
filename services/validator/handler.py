"""The "validation" job: fetch the artifacts, run pipeline.validate in the work directory, store
accepted.jsonl, rejected.jsonl and report.json.

Resumability: validation is fast (thousands of rows per second), so a job interrupted by a
restart simply runs again from scratch; its outputs are written under temporary names and renamed
into place, and stored atomically, so a half-finished run is never mistaken for a result."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.artifacts import Artifact
from services.common.config import ServiceConfig
from services.common.errors import InvalidArgument
from services.common.jobs import OperationContext
from services.common.references import ModelReferences
from services.common.taskspec import TaskSpec
from services.validator.config import ValidatorConfig
from services.validator.judge_client import GeneratorGrader
from services.validator.pipeline import ACCEPTED, REJECTED, REPORT, validate

KIND = "validation"


@dataclass(frozen=True)
class ValidationJob:
    """What StartValidation asks for, as typed objects (the servicer builds it from the request)."""

    spec: TaskSpec
    config: ValidatorConfig
    examples: Artifact
    seeds: Artifact | None = None
    test: Artifact | None = None


def run_validation(ctx: OperationContext, job: ValidationJob, service: ServiceConfig) -> dict[str, Any]:
    spec, config = job.spec, job.config
    ctx.progress(stage="fetching inputs", unit="lines", force=True)

    def fetch(artifact: Artifact | None) -> Path | None:
        return ctx.store.local_path(artifact) if artifact is not None else None

    examples, seeds, test = fetch(job.examples), fetch(job.seeds), fetch(job.test)
    predictions = None
    if config.agreement.enabled and config.agreement.predictions:
        # Only artifacts in the store: a remote caller must not make the service read its own files.
        ref = config.agreement.predictions
        if not ctx.store.exists(ref):
            raise InvalidArgument(f"validation.agreement.predictions: {ref} is not an artifact in the store")
        predictions = ctx.store.local_path(ref)
    grader = None
    if config.judge.enabled:
        address = service.peers.get("generator")
        if not address:
            raise InvalidArgument("validation.judge is enabled but no generator address is configured "
                                  "(DISTILLERY_GENERATOR_ADDR)")
        grader = GeneratorGrader(address, service.client_security, config.judge.timeout_seconds)
    # Rerun from scratch: leftovers of an interrupted run are discarded.
    out_dir = ctx.work_dir / "run"
    shutil.rmtree(out_dir, ignore_errors=True)

    def progress(done: int, total: int, counters: dict[str, float]) -> None:
        ctx.progress(done=done, total=total, stage="validating", unit="lines", counters=counters)

    try:
        outcome = validate(spec, examples, out_dir, config, seeds=seeds, test=test, predictions=predictions,
                           model_cache=service.model_cache, references=ModelReferences.for_service(ctx.store, service),
                           grader=grader, progress=progress,
                           check_cancelled=ctx.check_cancelled)
    finally:
        if grader is not None:
            grader.close()
    ctx.progress(stage="storing", force=True)
    stored: dict[str, Artifact] = {name: ctx.store.put_file(ctx.output_key(name), out_dir / name)
                                   for name in (ACCEPTED, REJECTED, REPORT)}
    report = outcome.report
    ctx.progress(done=report["read"], total=report["read"], stage="done", force=True,
                 counters={"accepted": report["accepted"], "rejected": report["rejected"]})
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "accepted": stored[ACCEPTED].to_dict(),
        "rejected": stored[REJECTED].to_dict(),
        "report": stored[REPORT].to_dict(),
        "read": report["read"],
        "accepted_count": report["accepted"],
        "rejected_count": report["rejected"],
        "rejected_by_reason": report["rejected_by_reason"],
    }


