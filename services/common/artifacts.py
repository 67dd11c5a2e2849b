"""The artifact store: where datasets, checkpoints and ONNX files live. Messages only carry
``ArtifactRef {uri, sha256, size}``; the bytes stay here.

Backed by fsspec, so ``file:///...`` (the embedded default, a PersistentVolume on Kubernetes) and
``s3://bucket/prefix`` (S3-compatible object storage, through s3fs) work the same way.

Guarantees:
- writes are atomic: bytes go to a temporary name next to the target and are renamed into place,
  so a reader never sees a half-written artifact;
- every artifact's sha256 is recorded when written and verified when read (a directory's
  MANIFEST.json lists every file's sha256; each is checked when the directory is read);
- every URI is confined to the store root: ``../`` or a path elsewhere is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import fsspec

from services.common.errors import ArtifactPathError, DataLoss, InvalidArgument, NotFound

MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """Plain-Python twin of the ``ArtifactRef`` message."""

    uri: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Artifact:
        return cls(uri=str(data["uri"]), sha256=str(data.get("sha256", "")), size=int(data.get("size", 0) or 0))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(directory: Path) -> dict[str, dict[str, object]]:
    """sha256 and size of every file below ``directory`` (except the manifest itself)."""
    files: dict[str, dict[str, object]] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            rel = path.relative_to(directory).as_posix()
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


def link_or_copy(src: str, dst: str) -> str:
    """A ``copytree`` copy function: a hard link where the filesystem allows one (same device), else
    a copy. Only for sources that are never rewritten in place afterwards (sealed store artifacts,
    a work folder deleted right after it is stored): a write through one name shows in the other."""
    try:
        os.link(src, dst)
    except OSError:  # another filesystem (EXDEV), or links not allowed: copy the bytes
        shutil.copy2(src, dst)
    return dst


class ArtifactStore:
    """A rooted view of one fsspec filesystem. Keys are relative POSIX paths below the root."""

    def __init__(self, url: str, cache_dir: Path | None = None) -> None:
        if "://" not in url:
            url = Path(url).resolve().as_uri()
        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/") or "/"
        self.scheme = urlparse(self.url).scheme or "file"
        self.is_local = self.scheme in ("file", "local")
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "distillery-artifact-cache"
        # Directories this process has hashed in full (see verify_dir).
        self._verified_dirs: set[tuple[object, ...]] = set()

    # ----- naming and confinement -------------------------------------------------------------
    def key_of(self, uri_or_key: str) -> str:
        """The key of a URI (or key) below the root; refuses anything that escapes it."""
        if "://" in uri_or_key:
            parsed = urlparse(uri_or_key)
            if (parsed.scheme or "file") != self.scheme:
                raise ArtifactPathError(f"artifact URI {uri_or_key!r} is not in this store ({self.url})")
            path = (parsed.netloc + parsed.path) if not self.is_local else parsed.path
        else:
            path = uri_or_key
        raw_parts = path.replace("\\", "/").split("/")
        if ".." in raw_parts:
            raise ArtifactPathError(f"artifact path {uri_or_key!r} contains '..'; paths must stay inside the store")
        if path.startswith("/") or "://" in uri_or_key:
            norm = posixpath.normpath(path)
            root = posixpath.normpath(self.root) if self.is_local else self.root
            if norm != root and not norm.startswith(root.rstrip("/") + "/"):
                raise ArtifactPathError(f"artifact path {uri_or_key!r} is outside the store root {self.url}")
            key = norm[len(root):].lstrip("/")
        else:
            key = posixpath.normpath(path).lstrip("/")
        if key in ("", "."):
            raise ArtifactPathError(f"artifact path {uri_or_key!r} names the store root, not an artifact")
        return key

    def full_path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{self.key_of(key)}"

    def holds(self, path: Path) -> bool:
        """True when ``path`` is a local file or folder inside this (local) store."""
        if not self.is_local:
            return False
        return Path(path).resolve().is_relative_to(Path(self.root).resolve())

    def uri_for(self, key: str) -> str:
        full = self.full_path(key)
        return Path(full).as_uri() if self.is_local else f"{self.scheme}://{full}"

    def exists(self, uri_or_key: str) -> bool:
        return bool(self.fs.exists(self.full_path(uri_or_key)))

    # ----- writing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """Write a file atomically: visible under ``key`` only after the block exits cleanly."""
        target = self.full_path(key)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as handle:
                yield handle
                if self.is_local:
                    handle.flush()
                    os.fsync(handle.fileno())
            self.fs.mv(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def put_bytes(self, key: str, data: bytes) -> Artifact:
        with self.writer(key) as handle:
            handle.write(data)
        return Artifact(self.uri_for(key), hashlib.sha256(data).hexdigest(), len(data))

    def put_json(self, key: str, data: object) -> Artifact:
        return self.put_bytes(key, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True).encode())

    def put_file(self, key: str, source: Path) -> Artifact:
        source = Path(source)
        if not source.is_file():
            raise NotFound(f"{source} is not a file")
        with self.writer(key) as handle, open(source, "rb") as src:
            shutil.copyfileobj(src, handle, _CHUNK)
        return Artifact(self.uri_for(key), sha256_file(source), source.stat().st_size)

    def put_dir(self, key: str, source: Path, link: bool = False) -> Artifact:
        """Store a directory (a checkpoint). Its sha256 is the sha256 of its MANIFEST.json, which
        lists every file's sha256; the manifest is written last, so a directory without one is
        incomplete and is never read as whole.

        ``link=True`` hard-links the files into a local store instead of copying them (no second
        copy of a 500 MB checkpoint on disk, no copy time). The caller promises not to rewrite the
        source files in place afterwards; in practice it deletes ``source`` right after."""
        source = Path(source)
        manifest = {"files": build_manifest(source)}
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
        target = self.full_path(key)
        if self.is_local and Path(source).resolve() == Path(target).resolve():
            (Path(target) / MANIFEST).write_bytes(manifest_bytes)
        elif self.is_local:
            tmp = Path(f"{target}.tmp-{uuid.uuid4().hex}")
            shutil.copytree(source, tmp, copy_function=link_or_copy if link else shutil.copy2)
            (tmp / MANIFEST).unlink(missing_ok=True)  # a source's own manifest may be a link: never write through it
            (tmp / MANIFEST).write_bytes(manifest_bytes)
            if Path(target).exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        else:
            for rel in manifest["files"]:
                self.fs.put_file(str(source / rel), f"{target}/{rel}")
            with self.writer(f"{key}/{MANIFEST}") as handle:
                handle.write(manifest_bytes)
        size = sum(int(entry["size"]) for entry in manifest["files"].values())
        return Artifact(self.uri_for(key), hashlib.sha256(manifest_bytes).hexdigest(), size)

    def adopt_dir(self, key: str) -> Artifact:
        """Seal a directory that was built in place inside a local store (writes its manifest)."""
        if not self.is_local:
            raise InvalidArgument("adopt_dir needs a local store")
        return self.put_dir(key, Path(self.full_path(key)))

    # ----- reading ----------------------------------------------------------------------------
    def read_bytes(self, ref: Artifact | str, verify: bool = True) -> bytes:
        uri = ref.uri if isinstance(ref, Artifact) else ref
        path = self.full_path(uri)
        if not self.fs.exists(path):
            raise NotFound(f"artifact {uri} does not exist")
        with self.fs.open(path, "rb") as handle:
            data = handle.read()
        if verify and isinstance(ref, Artifact) and ref.sha256:
            actual = hashlib.sha256(data).hexdigest()
            if actual != ref.sha256:
                raise DataLoss(f"artifact {uri} is corrupt: sha256 {actual[:12]}… != recorded {ref.sha256[:12]}…")
        return data

    def read_json(self, ref: Artifact | str) -> object:
        return json.loads(self.read_bytes(ref))

    def local_path(self, ref: Artifact | str, verify: bool = True) -> Path:
        """A local filesystem path with the artifact's bytes (a download for remote stores).
        Directories must be sealed (have a MANIFEST.json); files are verified against sha256."""
        uri = ref.uri if isinstance(ref, Artifact) else ref
        sha = ref.sha256 if isinstance(ref, Artifact) else ""
        full = self.full_path(uri)
        if not self.fs.exists(full):
            raise NotFound(f"artifact {uri} does not exist")
        is_dir = self.fs.isdir(full)
        if self.is_local:
            local = Path(full)
        else:
            local = self.cache_dir / (sha or hashlib.sha256(uri.encode()).hexdigest())
            if not local.exists():
                tmp = Path(f"{local}.tmp-{uuid.uuid4().hex}")
                self.fs.get(full, str(tmp), recursive=is_dir)
                os.replace(tmp, local)
        if verify:
            if is_dir:
                self.verify_dir(local, sha, uri)
            elif sha:
                actual = sha256_file(local)
                if actual != sha:
                    raise DataLoss(f"artifact {uri} is corrupt: sha256 {actual[:12]}… != recorded {sha[:12]}…")
        return local

    def verify_dir(self, local: Path, sha: str, uri: str) -> None:
        """A sealed directory is whole: its MANIFEST.json matches ``sha`` (when the reference
        carries one) and every file it lists has the recorded size and sha256.

        Hashing a 500 MB checkpoint costs about a second, so a directory verified once is not
        re-hashed by this process while its files keep the same inode, size and mtime (store
        artifacts are sealed and never rewritten in place)."""
        manifest_path = local / MANIFEST
        if not manifest_path.is_file():
            raise DataLoss(f"artifact directory {uri} has no {MANIFEST}: it was never completely written")
        manifest_bytes = manifest_path.read_bytes()
        manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
        if sha and manifest_sha != sha:
            raise DataLoss(f"artifact directory {uri}: {MANIFEST} does not match the recorded sha256")
        files = json.loads(manifest_bytes)["files"]
        stats: list[tuple[str, int, int, int]] = []
        for rel, entry in sorted(files.items()):
            path = local / rel
            st = path.stat() if path.is_file() else None
            if st is None or st.st_size != int(entry["size"]):
                raise DataLoss(f"artifact directory {uri}: file {rel} is missing or has the wrong size")
            stats.append((rel, st.st_ino, st.st_size, st.st_mtime_ns))
        fingerprint = (str(local.resolve()), manifest_sha, tuple(stats))
        if fingerprint in self._verified_dirs:
            return
        for rel, entry in files.items():
            recorded = str(entry.get("sha256") or "")
            if recorded and sha256_file(local / rel) != recorded:
                raise DataLoss(f"artifact directory {uri}: file {rel} is corrupt (sha256 differs from {MANIFEST})")
        self._verified_dirs.add(fingerprint)

    def describe(self, uri_or_key: str) -> Artifact:
        """An Artifact for something already in the store (sha256 computed now)."""
        full = self.full_path(uri_or_key)
        if not self.fs.exists(full):
            raise NotFound(f"artifact {uri_or_key} does not exist")
        if self.fs.isdir(full):
            manifest = self.read_bytes(f"{full}/{MANIFEST}" if self.is_local else f"{uri_or_key}/{MANIFEST}")
            files = json.loads(manifest)["files"]
            return Artifact(self.uri_for(uri_or_key), hashlib.sha256(manifest).hexdigest(),
                            sum(int(e["size"]) for e in files.values()))
        data = self.read_bytes(uri_or_key, verify=False)
        return Artifact(self.uri_for(uri_or_key), hashlib.sha256(data).hexdigest(), len(data))
