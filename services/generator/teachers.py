"""Which backend a teacher reference means, and one live backend per teacher per process
(engines are expensive: started lazily on first use, then kept).

- ``openai:http://host:8000/v1#model`` (or ``generation.backend: openai`` with
  ``generation.base_url`` / ``model`` / ``api_key_env``): an OpenAI-compatible server;
- anything else (a catalog name such as ``gemma3-270m``, or a local checkpoint directory): the
  in-process vLLM engine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.common import envs
from services.common.errors import InvalidArgument
from services.common.references import ModelReferences
from services.common.taskspec import DEFAULT_TEACHER, TaskSpec
from services.generator.backend import Backend


def default_teacher() -> str:
    return envs.TEACHER.get() or DEFAULT_TEACHER


def backend_kind(teacher: str, settings: dict[str, Any]) -> str:
    chosen = str(settings.get("backend") or "").lower()
    if teacher.startswith("openai:") or chosen == "openai":
        return "openai"
    if chosen not in ("", "vllm", "auto"):
        raise InvalidArgument(f"generation.backend {chosen!r} is not a backend; choose vllm or openai")
    return "vllm"


def resolve_local_model(teacher: str, cache_dir: Path) -> Path:
    """A checkpoint directory for a catalog name or a local path (safetensors only). For the
    user's own processes (benchmarks); the service resolves through ModelReferences."""
    from services.common.catalog import resolve_model

    return Path(resolve_model(teacher, cache_dir))


class TeacherPool:
    def __init__(self, home: Path, references: ModelReferences,
                 factories: dict[str, Callable[[str, dict[str, Any]], Backend]] | None = None) -> None:
        self.home = home
        # A local teacher is a catalog name, a store URI or a path under the allowed roots.
        self.references = references
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()
        self._factories = factories or {"vllm": self._vllm, "openai": self._openai}

    def _vllm(self, teacher: str, settings: dict[str, Any]) -> Backend:
        from services.generator.vllm_backend import VllmBackend

        path = self.references.resolve(teacher, "teacher", "checkpoint")
        return VllmBackend(path, name=teacher, home=self.home,
                           max_model_len=int(settings["max_model_len"]) if settings.get("max_model_len") else None)

    def _openai(self, teacher: str, settings: dict[str, Any]) -> Backend:
        from services.generator.openai_backend import OpenAIBackend, OpenAIConfig

        return OpenAIBackend(OpenAIConfig.from_ref(teacher if teacher.startswith("openai:") else "openai:", settings))

    def check(self, teacher: str, settings: dict[str, Any]) -> None:
        """Refuse a local teacher outside the allowed roots at the RPC edge, before queuing."""
        if backend_kind(teacher, settings) == "vllm":
            self.references.check(teacher, "teacher", "checkpoint")

    def get(self, teacher: str, settings: dict[str, Any] | None = None) -> Backend:
        settings = dict(settings or {})
        kind = backend_kind(teacher, settings)
        key = f"{kind}|{teacher}|{settings.get('base_url', '')}|{settings.get('model', '')}"
        with self._lock:
            backend = self._backends.get(key)
            if backend is None:
                backend = self._factories[kind](teacher, settings)
                self._backends[key] = backend
            return backend

    def for_task(self, spec: TaskSpec) -> Backend:
        return self.get(spec.teacher or default_teacher(), spec.section("generation"))

    def default(self) -> Backend:
        return self.get(default_teacher(), {})

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()
