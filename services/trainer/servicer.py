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
        # Each training runs as a batch/v1 Job; this service creates, follows and cancels them.
        from services.trainer.job_mode import JobModeSettings, run_as_job
        from services.trainer.k8s_jobs import KubernetesJobLauncher

        settings = JobModeSettings.from_env()
        launcher = KubernetesJobLauncher(settings.namespace)
        log.info("k8s-job mode: trainings run as Jobs of image %s in namespace %s with %d GPU each",
                 settings.image, settings.namespace, settings.gpus)

        def run_job(op: Any) -> dict[str, Any]:
            job_from_record(op.request)  # the stored request is checked as in-process mode checks it
            return run_as_job(op, op.request, launcher, settings, ctx.store)
        ctx.runner.register(KIND, run_job)
    else:
        handle = make_handler(ctx.references, ctx.config.device)
        ctx.runner.register(KIND, lambda op: handle(op, job_from_record(op.request)))
    servicer = TrainerServicer(ctx)
    return [ServiceRegistration(
        "distillery.v1.TrainerService",
        lambda server: trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server),
    )]
