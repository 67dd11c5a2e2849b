from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.artifacts import MANIFEST, Artifact, ArtifactStore
from services.common.errors import ArtifactPathError, DataLoss, NotFound


@pytest.fixture()
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore((tmp_path / "store").as_uri())


def test_put_and_read_verifies_sha256(store: ArtifactStore) -> None:
    ref = store.put_bytes("jobs/a/data.jsonl", b'{"x": 1}\n')
    assert ref.uri.startswith("file://") and ref.size == 9
    assert store.read_bytes(ref) == b'{"x": 1}\n'
    Path(store.full_path(ref.uri)).write_bytes(b'{"x": 2}\n')
    with pytest.raises(DataLoss, match="corrupt"):
        store.read_bytes(ref)


@pytest.mark.parametrize("bad", ["../escape.txt", "jobs/../../etc/passwd", "file:///etc/passwd", "/etc/passwd",
                                 "s3://bucket/key"])
def test_paths_outside_the_root_are_refused(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(ArtifactPathError):
        store.read_bytes(bad)


def test_atomic_writer_leaves_nothing_on_failure(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError):
        with store.writer("half.bin") as handle:
            handle.write(b"partial")
            raise RuntimeError("crash mid-write")
    assert not store.exists("half.bin")
    assert not list(Path(store.root).glob("half.bin*"))


def test_directory_artifacts_have_a_manifest_and_are_verified(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"w" * 100)
    (src / "sub" / "config.json").write_text("{}")
    ref = store.put_dir("models/m1", src)
    local = store.local_path(ref)
    manifest = json.loads((local / MANIFEST).read_text())
    assert set(manifest["files"]) == {"model.safetensors", "sub/config.json"}
    assert ref.size == 102
    (local / "model.safetensors").write_bytes(b"short")
    with pytest.raises(DataLoss, match="wrong size"):
        store.local_path(ref)
    (local / MANIFEST).unlink()
    with pytest.raises(DataLoss, match="never completely written"):
        store.local_path(Artifact(ref.uri, "", 0))


def test_missing_artifact_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFound):
        store.read_bytes("nothing/here")
