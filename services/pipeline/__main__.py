"""`python -m services.pipeline`: the orchestrator service, and in a thread of the same process the
review page (DISTILLERY_REVIEW_PORT, default 8050; -1 turns it off)."""

from __future__ import annotations

import logging

from distillery.v1 import pipeline_pb2, pipeline_pb2_grpc

from services.common import envs
from services.common.runtime import ServiceContext, run_service
from services.common.server import ServiceRegistration
from services.pipeline.handler import job_request, make_handlers
from services.pipeline.review_server import ReviewHandler, ReviewServer
from services.pipeline.servicer import (
    RESULT_TYPES,
    PipelineServicer,
    distillation_from_record,
    retune_from_record,
)
from services.pipeline.workers import GrpcWorkers

log = logging.getLogger(__name__)


def start_review_page(ctx: ServiceContext) -> ReviewServer | None:
    """The review page beside the gRPC server, with its token and certificate. A default port
    that is taken (another local server) leaves gRPC up and says so; an explicit one must work."""
    port = envs.REVIEW_PORT.get()
    if port < 0:
        return None
    handler = ReviewHandler(ctx.runner, lambda name: job_request(ctx.runner, name, distillation_from_record,
                                                                 retune_from_record))
    try:
        return ReviewServer(handler, ctx.config.host, port, ctx.config.auth_token, ctx.config.tls_cert,
                            ctx.config.tls_key).start()
    except OSError as exc:
        if envs.REVIEW_PORT.is_set():
            raise
        log.error("review page not started: %s; set DISTILLERY_REVIEW_PORT", exc)
        return None


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    workers = GrpcWorkers(ctx.config.peers, ctx.config.client_security)
    make_handlers(ctx.runner, workers, distillation_from_record, retune_from_record)
    servicer = PipelineServicer(ctx.runner)
    start_review_page(ctx)
    return [ServiceRegistration(pipeline_pb2.DESCRIPTOR.services_by_name["PipelineService"].full_name,
                                lambda server: pipeline_pb2_grpc.add_PipelineServiceServicer_to_server(servicer, server))]


if __name__ == "__main__":
    run_service("pipeline", build, RESULT_TYPES, max_concurrent_jobs=2)
