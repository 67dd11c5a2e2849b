"""One resolver for every model or artifact reference a request names (trainer student, evaluator
candidates, serving bundles and exports, generator teachers).

A reference is exactly one of:

* a **store URI** (``file:///…/store/…``, ``s3://…``) of an artifact this platform wrote: read
  through the store, which confines it to the store root, and verified — a file against its
  sha256, a directory against its ``MANIFEST.json`` (every file's size and sha256);
* a **catalog name** or a hub id the catalog lists (``smollm2-135m-instruct``,
  ``Qwen/Qwen3-0.6B``): materialized into the model cache, never downloaded;
* a **local path** (absolute, relative, or a ``file://`` URI outside the store) that lies, after
  following symlinks, inside an allowed root: the store, the model cache, or one of
  ``DISTILLERY_MODEL_ROOTS``. Anything else is refused with PERMISSION_DENIED, so a request can
  never make a service read ``/etc`` or another tenant's files.

Every directory, whichever branch found it, passes the pickle refusal: weights that are Python
pickles only (``.bin``, ``.pt``…) are refused, never loaded.

Only light imports here (the generator's vLLM environment uses this module too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlparse

from services.common.artifacts import Artifact, ArtifactStore
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, UnsafeModelError

if TYPE_CHECKING:  # config imports this module (parse_roots)
    from services.common.config import ServiceConfig

# Weight files that are Python pickles: loading one can execute arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
Kind = Literal["checkpoint", "adapter", "directory", "file"]


def refuse_pickle_weights(directory: Path, kind: Kind, what: str) -> None:
    """Refuse a directory whose weights are pickles only. A checkpoint must hold safetensors; an
    adapter must hold ``adapter_model.safetensors``; any other directory (an ONNX bundle) may hold
    no pickle file at all besides safetensors weights."""
    names = [p.name for p in directory.iterdir() if p.is_file()]
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    has_safetensors = any(n.endswith(".safetensors") for n in names)
    if pickles and not has_safetensors:
        raise UnsafeModelError(
            f"{what} {directory} holds only pickle weights ({', '.join(pickles)}), which can run arbitrary code "
            "when loaded, so Distillery refuses them. Convert it to safetensors in a trusted, isolated "
            "environment (save_pretrained(dir, safe_serialization=True)) and point at that directory."
        )
    if kind == "checkpoint" and not has_safetensors:
        raise NotFound(f"{what} {directory} holds no model weights (*.safetensors); is it the checkpoint directory?")
    if kind == "adapter" and "adapter_model.safetensors" not in names:
        raise NotFound(f"{what} {directory} holds no adapter_model.safetensors; is it a LoRA adapter directory?")


def parse_roots(text: str) -> tuple[Path, ...]:
    """``DISTILLERY_MODEL_ROOTS``: directories separated by ``os.pathsep`` (``:`` on Linux)."""
    return tuple(Path(part).expanduser().resolve() for part in text.split(os.pathsep) if part.strip())


@dataclass(frozen=True)
class ModelReferences:
    """Resolves references for one service process. ``roots`` are the extra local directories a
    request may name (``DISTILLERY_MODEL_ROOTS``); the store and the model cache are always allowed."""

    store: ArtifactStore
    model_cache: Path
    roots: tuple[Path, ...] = field(default=())

    @classmethod
    def for_service(cls, store: ArtifactStore, config: ServiceConfig) -> ModelReferences:
        """The resolver of one service process: its store, model cache and DISTILLERY_MODEL_ROOTS."""
        return cls(store, Path(config.model_cache or config.home / "models"), config.model_roots)

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        store_root = (Path(self.store.root).resolve(),) if self.store.is_local else ()
        return (*store_root, self.model_cache.resolve(), *self.roots)

    def describe_roots(self) -> str:
        return ", ".join(str(r) for r in self.allowed_roots)

    # ----- the one entry point ----------------------------------------------------------------
    def resolve(self, ref: str | Artifact, what: str, kind: Kind = "checkpoint") -> Path:
        """A local path holding what ``ref`` names; ``what`` names the field in error messages
        (``"student.uri"``, ``"candidate[1].model"``)."""
        artifact = ref if isinstance(ref, Artifact) else None
        text = (artifact.uri if artifact else str(ref)).strip()
        if not text:
            raise InvalidArgument(f"{what} is empty: give a store URI, a catalog name or a path under "
                                  f"an allowed root ({self.describe_roots()})")
        if self._in_store(text):
            return self._checked(self.store.local_path(artifact or text, verify=True), kind, what)
        if "://" in text and not text.startswith("file://"):
            raise InvalidArgument(f"{what} {text!r}: scheme {urlparse(text).scheme!r} is not this platform's store "
                                  f"({self.store.url}); give a store URI, a catalog name or a local path")
        if kind in ("checkpoint", "directory") and not text.startswith("file://"):
            entry = self._catalog_entry(text)
            if entry is not None:
                from services.common.catalog import resolve_entry

                return self._checked(resolve_entry(entry, self.model_cache), kind, what)
        return self._checked(self._local(text, what), kind, what)

    def check(self, ref: str | Artifact, what: str, kind: Kind = "checkpoint") -> None:
        """Refuse a reference up front (at the RPC edge) without materializing or hashing anything:
        a path outside the roots or a foreign URI fails before a job is queued."""
        text = (ref.uri if isinstance(ref, Artifact) else str(ref)).strip()
        if not text:
            raise InvalidArgument(f"{what} is empty")
        if self._in_store(text):
            return
        if "://" in text and not text.startswith("file://"):
            raise InvalidArgument(f"{what} {text!r} is not a URI of this platform's store ({self.store.url})")
        if kind in ("checkpoint", "directory") and not text.startswith("file://") \
                and self._catalog_entry(text) is not None:
            return
        self._local(text, what)

    # ----- branches ---------------------------------------------------------------------------
    def _in_store(self, text: str) -> bool:
        if "://" not in text:
            return False
        if not self.store.is_local:
            return text.startswith(self.store.scheme + "://")
        path = Path(unquote(urlparse(text).path))
        return text.startswith("file://") and self.store.holds(path)

    @staticmethod
    def _catalog_entry(text: str) -> object | None:
        from services.common.catalog import find_entry

        return find_entry(text)

    def _local(self, text: str, what: str) -> Path:
        raw = Path(unquote(urlparse(text).path)) if text.startswith("file://") else Path(text).expanduser()
        resolved = raw.resolve()  # follows symlinks: a link inside a root pointing out is refused
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.allowed_roots):
            raise PermissionDenied(
                f"{what} {text!r} is outside the directories a request may name ({self.describe_roots()}). "
                "Upload it to the store, use a catalog name, or add its parent directory to "
                "DISTILLERY_MODEL_ROOTS on the service."
            )
        if not resolved.exists():
            raise NotFound(f"{what} {text!r} does not exist")
        return resolved

    @staticmethod
    def _checked(path: Path, kind: Kind, what: str) -> Path:
        if kind == "file":
            if not path.is_file():
                raise InvalidArgument(f"{what} {path} is not a file")
            return path
        if not path.is_dir():
            raise InvalidArgument(f"{what} {path} is not a directory")
        refuse_pickle_weights(path, kind, what)
        return path
