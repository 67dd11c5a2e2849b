"""ValidatorService over gRPC: thin. StartValidation checks the request (task, artifacts, settings)
synchronously — a bad setting is an INVALID_ARGUMENT naming the key, not a failed operation —
and queues a "validation" job; the job fetches the artifacts, runs pipeline.validate in its work
directory and stores accepted.jsonl, rejected.jsonl and report.json.

Resumability: validation is fast (thousands of rows per second), so a job interrupted by a
restart simply runs again from scratch; its outputs are written under temporary names and renamed
into place, and stored atomically, so a half-finished run is never mistaken for a result."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import grpc
from distillery.v1 import validator_pb2, validator_pb2_grpc
from google.protobuf.message import Message

from services.common.artifacts import Artifact
from services.common.config import ServiceConfig
from services.common.convert import (
    artifact_from_proto,
    dict_to_message,
    message_to_dict,
    struct_to_dict,
    task_from_proto,
)
from services.common.errors import InvalidArgument
from services.common.jobs import OperationContext
from services.common.operations_servicer import record_to_operation
from services.common.references import ModelReferences
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.validator.config import ValidatorConfig, build_config
from services.validator.filters.grounded import check_fields
from services.validator.judge_client import GeneratorGrader
from services.validator.pipeline import ACCEPTED, REJECTED, REPORT, validate

KIND = "validation"
RESULT_TYPES: dict[str, type[Message]] = {KIND: validator_pb2.ValidationResult}


def parse_request(request: validator_pb2.StartValidationRequest) -> tuple[Any, ValidatorConfig]:
    if not request.HasField("task"):
        raise InvalidArgument("task is required: the TaskSpec the examples were generated for")
    if not request.examples.uri:
        raise InvalidArgument("examples is required: the generated JSONL to validate (an ArtifactRef)")
    spec = task_from_proto(request.task)
    overrides = struct_to_dict(request.config) if request.HasField("config") else {}
    config = build_config(spec.section("validation"), overrides)
    if config.grounded.enabled:
        check_fields(spec, config.grounded)  # a field path the output schema cannot have
    return spec, config


def run_validation(ctx: OperationContext, service: ServiceConfig) -> dict[str, Any]:
    request = dict_to_message(ctx.request, validator_pb2.StartValidationRequest())
    spec, config = parse_request(request)
    ctx.progress(stage="fetching inputs", unit="lines", force=True)

    def fetch(ref: Any) -> Path | None:
        artifact = artifact_from_proto(ref)
        return ctx.store.local_path(artifact) if artifact is not None else None

    examples, seeds, test = fetch(request.examples), fetch(request.seeds), fetch(request.test)
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


class ValidatorServicer(validator_pb2_grpc.ValidatorServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def StartValidation(self, request: validator_pb2.StartValidationRequest,
                        context: grpc.ServicerContext) -> Any:
        parse_request(request)  # a bad request fails here, before any job exists
        record = self.ctx.runner.submit(KIND, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    ctx.runner.register(KIND, lambda op: run_validation(op, ctx.config))
    servicer = ValidatorServicer(ctx)
    name = validator_pb2.DESCRIPTOR.services_by_name["ValidatorService"].full_name
    return [ServiceRegistration(name, lambda server: validator_pb2_grpc.add_ValidatorServiceServicer_to_server(
        servicer, server))]
