"""The model repository: every loaded model and version, served at once. Remembers what was
loaded (``models.json`` in the state directory) so a restarted server loads them again."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from services.common.atomic import write_json_atomic
from services.common.errors import InvalidArgument, NotFound
from services.common.taskspec import TaskSpec
from services.serving import bundle as bundle_mod
from services.serving.runtime import ModelRuntime, OnnxModelRuntime

log = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    name: str
    version: str
    path: str  # the ONNX directory served
    quantization: str
    task: dict
    uri: str = ""


def resolve_onnx_dir(path: Path, quantization: str) -> Path:
    """An ONNX directory, a bundle (→ its variant), or a variant of a bundle."""
    path = Path(path)
    if quantization == "none" and (path / "model.onnx").exists():
        return path
    candidate = bundle_mod.variant_dir(path, quantization)
    if (candidate / "model.onnx").exists():
        return candidate
    if (path / "model.onnx").exists() and quantization != "none":
        raise NotFound(f"{path} is a single ONNX model; the {quantization} variant is in a bundle's "
                       f"{bundle_mod.VARIANT_DIRS[quantization]}/ (was it refused by the parity check?)")
    raise NotFound(f"{path}: no model.onnx, and no {bundle_mod.VARIANT_DIRS[quantization]}/model.onnx")


class ModelRepository:
    def __init__(self, state_file: Path | None = None, max_batch: int = 8, max_wait_ms: float = 5.0,
                 max_queue: int = 256) -> None:
        self.state_file = state_file
        self.max_batch, self.max_wait_ms, self.max_queue = max_batch, max_wait_ms, max_queue
        self._models: dict[tuple[str, str], ModelRuntime] = {}
        self._entries: dict[tuple[str, str], ModelEntry] = {}
        self._lock = threading.RLock()

    def load(self, name: str, path: Path, version: str = "", quantization: str = "none",
             spec: TaskSpec | None = None, uri: str = "") -> ModelRuntime:
        if not name or "/" in name or ":" in name:
            raise InvalidArgument(f"model name {name!r} must be non-empty without '/' or ':'")
        version = version or "1"
        onnx_dir = resolve_onnx_dir(Path(path), quantization)
        spec = spec or bundle_mod.read_task(Path(path)) or bundle_mod.read_task(onnx_dir)
        if spec is None:
            raise InvalidArgument(f"no task given and no task.json in {path}; send the task with LoadModel")
        runtime = OnnxModelRuntime(name, version, onnx_dir, spec, quantization, self.max_batch, self.max_wait_ms,
                                   uri=uri, max_queue=self.max_queue)
        runtime.load()
        with self._lock:
            old = self._models.get((name, version))
            self._models[(name, version)] = runtime
            self._entries[(name, version)] = ModelEntry(name, version, str(onnx_dir), quantization,
                                                        spec.to_dict(), uri or onnx_dir.as_uri())
            self._save()
        if old is not None:
            old.unload()
        log.info("loaded model %s version %s (%s) from %s", name, version, quantization, onnx_dir)
        return runtime

    def unload(self, name: str, version: str = "") -> list[str]:
        with self._lock:
            keys = [k for k in self._models if k[0] == name and (not version or k[1] == version)]
            if not keys:
                raise NotFound(self._missing(name, version))
            runtimes = [self._models.pop(k) for k in keys]
            for key in keys:
                self._entries.pop(key, None)
            self._save()
        for runtime in runtimes:
            runtime.unload()
        return [k[1] for k in keys]

    def get(self, name: str, version: str = "") -> ModelRuntime:
        with self._lock:
            if version:
                runtime = self._models.get((name, version))
            else:
                versions = [k for k in self._models if k[0] == name]
                runtime = self._models[max(versions, key=lambda k: _version_key(k[1]))] if versions else None
        if runtime is None:
            raise NotFound(self._missing(name, version))
        return runtime

    def versions(self, name: str) -> list[str]:
        with self._lock:
            return sorted((k[1] for k in self._models if k[0] == name), key=_version_key)

    def list(self) -> list[ModelEntry]:
        with self._lock:
            return [self._entries[k] for k in sorted(self._entries, key=lambda k: (k[0], _version_key(k[1])))]

    def entry(self, name: str, version: str) -> ModelEntry:
        return self._entries[(name, version)]

    def _missing(self, name: str, version: str) -> str:
        known = ", ".join(sorted({f"{n}:{v}" for n, v in self._models})) or "none"
        what = f"model {name!r}" + (f" version {version!r}" if version else "")
        return f"{what} is not loaded (loaded: {known})"

    def _save(self) -> None:
        if self.state_file is None:
            return
        write_json_atomic(self.state_file, [asdict(e) for e in self._entries.values()])

    def restore(self) -> list[str]:
        """Load again what was loaded when the server last stopped; skip what is gone."""
        if self.state_file is None or not self.state_file.exists():
            return []
        loaded = []
        for row in json.loads(self.state_file.read_text()):
            entry = ModelEntry(**row)
            try:
                runtime = self.load(entry.name, Path(entry.path), entry.version, "none",
                                    TaskSpec.from_dict(entry.task), entry.uri)
                runtime.quantization = entry.quantization  # type: ignore[attr-defined]
                self._entries[(entry.name, entry.version)].quantization = entry.quantization
                loaded.append(f"{entry.name}:{entry.version}")
            except Exception as exc:  # a model whose files are gone must not stop the server
                log.warning("could not reload model %s:%s from %s: %s", entry.name, entry.version, entry.path, exc)
        return loaded

    def close(self) -> None:
        with self._lock:
            runtimes = list(self._models.values())
            self._models.clear()
        for runtime in runtimes:
            runtime.unload()


def _version_key(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)
