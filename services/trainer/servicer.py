"""gRPC edge of the trainer: StartTraining validates the request (so a bad config fails at once
with INVALID_ARGUMENT instead of inside a queued job) and queues a "training" operation."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from distillery.v1 import trainer_pb2, trainer_pb2_grpc
from google.longrunning import operations_pb2

from services.common import envs
from services.common.convert import (
    artifact_from_proto,
    message_from_record,
    message_to_dict,
    struct_to_dict,
    task_from_proto,
)
from services.common.errors import InvalidArgument
from services.common.operations_servicer import record_to_operation
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.trainer.config import merge_settings
from services.trainer.handler import KIND, TrainingJob, make_handler

log = logging.getLogger(__name__)

RESULT_TYPES = {KIND: trainer_pb2.TrainingResult}


def training_job(request: trainer_pb2.StartTrainingRequest) -> TrainingJob:
    """StartTrainingRequest → TrainingJob; INVALID_ARGUMENT naming what is missing or wrong."""
    if not request.HasField("task"):
        raise InvalidArgument("task is required")
    spec = task_from_proto(request.task)
    config = merge_settings(spec.section("training"),
                            struct_to_dict(request.config) if request.HasField("config") else None)
    train = artifact_from_proto(request.train)
    if train is None:
        raise InvalidArgument("train.uri is required (the accepted.jsonl artifact)")
    return TrainingJob(spec=spec, config=config, train=train, student=request.student.uri or spec.student,
                       seeds=artifact_from_proto(request.seeds))


def job_from_record(record: dict[str, Any]) -> TrainingJob:
    """The persisted request (proto-JSON, as StartTraining stored it) as a TrainingJob."""
    return training_job(message_from_record(record, trainer_pb2.StartTrainingRequest()))


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def StartTraining(self, request: trainer_pb2.StartTrainingRequest,
                      context: grpc.ServicerContext) -> operations_pb2.Operation:
        job = training_job(request)  # a bad request fails here, before any job exists
        self.ctx.references.check(job.student, "student.uri")
        record = self.ctx.runner.submit(KIND, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)


def job_from_json(raw: Any, where: str) -> tuple[TrainingJob, str]:
    """A StartTrainingRequest in proto JSON (``run_job --request``) as a TrainingJob and the store
    prefix its outputs go under; a key the proto lacks is INVALID_ARGUMENT naming it."""
    try:
        message = message_from_record(raw, trainer_pb2.StartTrainingRequest())
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    return training_job(message), message.output_prefix or f"trainer-jobs/{message.request_id or 'run'}"


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    if envs.TRAINER_MODE.get() == "k8s-job":
        # Said loudly: the GPU overlay sets this mode, but launching Jobs is not wired yet (issue 20).
        log.warning("DISTILLERY_TRAINER_MODE=k8s-job is not implemented yet: training runs in this process")
    handle = make_handler(ctx.references, ctx.config.device)
    ctx.runner.register(KIND, lambda op: handle(op, job_from_record(op.request)))
    servicer = TrainerServicer(ctx)
    return [ServiceRegistration(
        "distillery.v1.TrainerService",
        lambda server: trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server),
    )]
