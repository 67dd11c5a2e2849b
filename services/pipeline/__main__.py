"""`python -m services.pipeline`: the orchestrator service."""

from __future__ import annotations

from distillery.v1 import pipeline_pb2, pipeline_pb2_grpc

from services.common.runtime import ServiceContext, run_service
from services.common.server import ServiceRegistration
from services.pipeline.handler import make_handlers
from services.pipeline.servicer import (
    RESULT_TYPES,
    PipelineServicer,
    distillation_from_record,
    retune_from_record,
)
from services.pipeline.workers import GrpcWorkers


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    workers = GrpcWorkers(ctx.config.peers, ctx.config.client_security)
    make_handlers(ctx.runner, workers, distillation_from_record, retune_from_record)
    servicer = PipelineServicer(ctx.runner)
    return [ServiceRegistration(pipeline_pb2.DESCRIPTOR.services_by_name["PipelineService"].full_name,
                                lambda server: pipeline_pb2_grpc.add_PipelineServiceServicer_to_server(servicer, server))]


if __name__ == "__main__":
    run_service("pipeline", build, RESULT_TYPES, max_concurrent_jobs=2)
