"""gRPC edge of the evaluator: StartEvaluation checks the request and queues an ``evaluate``
operation; everything else lives in the handler (core code, no gRPC)."""

from __future__ import annotations

from typing import Any

import grpc
from distillery.v1 import evaluator_pb2, evaluator_pb2_grpc

from services.common.config import ServiceConfig
from services.common.convert import message_to_dict
from services.common.operations_servicer import record_to_operation
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.evaluator.handler import KIND, make_handler, parse_request

RESULT_TYPES = {KIND: evaluator_pb2.EvaluationResult}


class EvaluatorServicer(evaluator_pb2_grpc.EvaluatorServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def StartEvaluation(self, request: evaluator_pb2.StartEvaluationRequest, context: grpc.ServicerContext) -> Any:
        payload = message_to_dict(request)
        job = parse_request(payload)  # INVALID_ARGUMENT now, not minutes later in a failed operation
        for index, candidate in enumerate(job.candidates):
            for field_name, ref, kind in (("model.uri", candidate.model_uri, "directory"),
                                          ("model.base", candidate.model_base, "checkpoint")):
                if ref:  # paths outside the allowed roots: PERMISSION_DENIED before anything is queued
                    self.ctx.references.check(ref, f"candidates[{index}] ({candidate.name}): {field_name}", kind)
        record = self.ctx.runner.submit(KIND, payload, request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)


def build(ctx: ServiceContext, client_factory: Any = None) -> list[ServiceRegistration]:
    """Register the job handler and the servicer (``start_service``/``run_service`` call this)."""
    config: ServiceConfig = ctx.config
    ctx.runner.register(KIND, make_handler(config, client_factory))
    servicer = EvaluatorServicer(ctx)
    return [ServiceRegistration(evaluator_pb2.DESCRIPTOR.services_by_name["EvaluatorService"].full_name,
                                lambda server: evaluator_pb2_grpc.add_EvaluatorServiceServicer_to_server(servicer, server))]
