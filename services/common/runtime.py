"""Assembles a service process: config → store, operation store, job runner → gRPC server.
Each service's ``__main__`` calls ``run_service`` with its servicers (the MLServer pattern:
servicer → handler → runtime)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from services.common import envs
from services.common.artifacts import ArtifactStore
from services.common.config import ServiceConfig
from services.common.errors import InvalidArgument
from services.common.jobs import JobRunner
from services.common.logs import configure_logging
from services.common.operations import OperationStore, open_operation_store
from services.common.operations_servicer import operations_registrations
from services.common.references import ModelReferences
from services.common.server import DistilleryServer, ServiceRegistration

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    config: ServiceConfig
    store: ArtifactStore
    ops: OperationStore
    runner: JobRunner

    @property
    def references(self) -> ModelReferences:
        """The resolver every model/artifact reference of a request goes through."""
        return ModelReferences.for_service(self.store, self.config)


def build_context(config: ServiceConfig, max_concurrent_jobs: int = 1) -> ServiceContext:
    config.home.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(config.store_url, cache_dir=config.home / "cache" / "artifacts")
    ops = open_operation_store(config.db_url)
    lease = envs.LEASE_SECONDS.get()
    if lease <= 0:
        raise InvalidArgument(f"environment variable DISTILLERY_LEASE_SECONDS={lease} must be > 0")
    runner = JobRunner(config.service, ops, store, config.home, max_concurrent=max_concurrent_jobs,
                       lease_seconds=lease)
    return ServiceContext(config, store, ops, runner)


def start_service(config: ServiceConfig,
                  build: Callable[[ServiceContext], list[ServiceRegistration]],
                  result_types: dict[str, type[Message]],
                  max_concurrent_jobs: int = 1) -> tuple[DistilleryServer, ServiceContext]:
    """Build and start the server; resume the jobs that were running when it last stopped."""
    ctx = build_context(config, max_concurrent_jobs)
    registrations = build(ctx) + operations_registrations(ctx.runner, result_types)
    server = DistilleryServer(config, registrations, on_stop=ctx.runner.shutdown).start()
    resumed = ctx.runner.resume_unfinished()
    if resumed:
        log.info("resumed %d unfinished operation(s): %s", len(resumed), ", ".join(resumed))
    return server, ctx


def run_service(service: str,
                build: Callable[[ServiceContext], list[ServiceRegistration]],
                result_types: dict[str, type[Message]],
                max_concurrent_jobs: int = 1) -> None:
    """Entry point body of ``python -m services.<service>``: serve until SIGTERM."""
    configure_logging(service, envs.LOG_LEVEL.get())
    config = ServiceConfig.from_env(service)
    server, _ = start_service(config, build, result_types, max_concurrent_jobs)
    server.wait_for_termination()
