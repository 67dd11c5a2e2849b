"""gRPC edge of the trainer: StartTraining validates the request (so a bad config fails at once
with INVALID_ARGUMENT instead of inside a queued job) and queues a "training" operation."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from distillery.v1 import trainer_pb2, trainer_pb2_grpc
from google.longrunning import operations_pb2
from google.protobuf import json_format

from services.common import envs
from services.common.convert import message_to_dict
from services.common.errors import InvalidArgument
from services.common.operations_servicer import record_to_operation
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.trainer.handler import KIND, make_handler, parse_config, parse_task, student_ref, train_ref

log = logging.getLogger(__name__)

RESULT_TYPES = {KIND: trainer_pb2.TrainingResult}


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def StartTraining(self, request: trainer_pb2.StartTrainingRequest,
                      context: grpc.ServicerContext) -> operations_pb2.Operation:
        data: dict[str, Any] = message_to_dict(request)
        spec = parse_task(data)
        parse_config(data, spec)
        train_ref(data)
        self.ctx.references.check(student_ref(data, spec), "student.uri")
        record = self.ctx.runner.submit(KIND, data, request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)


def request_record(raw: Any, where: str) -> dict[str, Any]:
    """A StartTrainingRequest in proto JSON (``run_job --request``) → the record a training job
    reads, as StartTraining would store it; a key the proto lacks is INVALID_ARGUMENT naming it."""
    try:
        message = json_format.ParseDict(raw, trainer_pb2.StartTrainingRequest())
    except json_format.ParseError as exc:
        raise InvalidArgument(f"{where}: not a StartTrainingRequest: {exc}") from None
    return message_to_dict(message)


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    if envs.TRAINER_MODE.get() == "k8s-job":
        # Said loudly: the GPU overlay sets this mode, but launching Jobs is not wired yet (issue 20).
        log.warning("DISTILLERY_TRAINER_MODE=k8s-job is not implemented yet: training runs in this process")
    ctx.runner.register(KIND, make_handler(ctx.references, ctx.config.device))
    servicer = TrainerServicer(ctx)
    return [ServiceRegistration(
        "distillery.v1.TrainerService",
        lambda server: trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server),
    )]
