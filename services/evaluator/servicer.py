"""gRPC edge of the evaluator: StartEvaluation checks the request and queues an ``evaluate``
operation; everything else lives in the handler (core code, no gRPC)."""

from __future__ import annotations

import re
from typing import Any

import grpc
from distillery.v1 import common_pb2, evaluator_pb2, evaluator_pb2_grpc

from services.common.config import ServiceConfig
from services.common.convert import (
    artifact_from_proto,
    message_from_record,
    message_to_dict,
    struct_to_dict,
    task_from_proto,
)
from services.common.enums import CandidateKind
from services.common.errors import InvalidArgument
from services.common.operations_servicer import record_to_operation
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.evaluator.candidates import ONNX, STUDENT, TEACHER, CandidateSpec, EvalOptions
from services.evaluator.handler import KIND, EvaluationJob, make_handler

RESULT_TYPES = {KIND: evaluator_pb2.EvaluationResult}
_KINDS = {CandidateKind.TEACHER: TEACHER, CandidateKind.STUDENT: STUDENT, CandidateKind.ONNX: ONNX}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def evaluation_job(request: evaluator_pb2.StartEvaluationRequest) -> EvaluationJob:
    """StartEvaluationRequest → EvaluationJob; INVALID_ARGUMENT with the field named for anything
    missing or wrong."""
    if not request.HasField("task"):
        raise InvalidArgument("task is missing")
    task = task_from_proto(request.task)
    test = artifact_from_proto(request.test)
    if test is None:
        raise InvalidArgument("test is missing: give the ArtifactRef of test.jsonl")
    if not request.candidates:
        raise InvalidArgument("candidates is empty: name at least one teacher or student to evaluate")
    candidates: list[CandidateSpec] = []
    seen: set[str] = set()
    for index, raw in enumerate(request.candidates):
        if not _NAME.match(raw.name):
            raise InvalidArgument(f"candidates[{index}].name {raw.name!r} must be 1-64 letters, digits, '-', '_' or '.'")
        if raw.name in seen:
            raise InvalidArgument(f"candidates[{index}].name {raw.name!r} is used twice")
        seen.add(raw.name)
        kind = _KINDS.get(evaluator_pb2.CandidateKind.Name(raw.kind))
        if kind is None:
            raise InvalidArgument(f"candidates[{index}].kind is missing; set TEACHER, STUDENT or ONNX")
        if kind != TEACHER and not raw.model.uri:
            raise InvalidArgument(f"candidates[{index}] ({raw.name}): model.uri is missing")
        model_format = common_pb2.ModelFormat.Name(raw.model.format) if raw.model.format else ""
        candidates.append(CandidateSpec(name=raw.name, kind=kind, model_uri=raw.model.uri, model_format=model_format,
                                        model_base=raw.model.base, endpoint=raw.endpoint))
    options = EvalOptions.from_dict(struct_to_dict(request.config) if request.HasField("config") else None)
    return EvaluationJob(task=task, test=test, seeds=artifact_from_proto(request.seeds), candidates=candidates,
                         options=options)


def job_from_record(record: dict[str, Any]) -> EvaluationJob:
    """The persisted request (proto-JSON, as StartEvaluation stored it) as an EvaluationJob."""
    return evaluation_job(message_from_record(record, evaluator_pb2.StartEvaluationRequest()))


class EvaluatorServicer(evaluator_pb2_grpc.EvaluatorServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def StartEvaluation(self, request: evaluator_pb2.StartEvaluationRequest, context: grpc.ServicerContext) -> Any:
        job = evaluation_job(request)  # INVALID_ARGUMENT now, not minutes later in a failed operation
        for index, candidate in enumerate(job.candidates):
            for field_name, ref, kind in (("model.uri", candidate.model_uri, "directory"),
                                          ("model.base", candidate.model_base, "checkpoint")):
                if ref:  # paths outside the allowed roots: PERMISSION_DENIED before anything is queued
                    self.ctx.references.check(ref, f"candidates[{index}] ({candidate.name}): {field_name}", kind)
        record = self.ctx.runner.submit(KIND, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)


def build(ctx: ServiceContext, client_factory: Any = None) -> list[ServiceRegistration]:
    """Register the job handler and the servicer (``start_service``/``run_service`` call this)."""
    config: ServiceConfig = ctx.config
    handle = make_handler(config, client_factory)
    ctx.runner.register(KIND, lambda op: handle(op, job_from_record(op.request)))
    servicer = EvaluatorServicer(ctx)
    return [ServiceRegistration(evaluator_pb2.DESCRIPTOR.services_by_name["EvaluatorService"].full_name,
                                lambda server: evaluator_pb2_grpc.add_EvaluatorServiceServicer_to_server(servicer, server))]
