from __future__ import annotations

import json
import shutil
import tempfile
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


def test_put_dir_with_link_shares_the_files_and_seals_the_same_manifest(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "merged"
    (src / "sub").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"w" * 1000)
    (src / "sub" / "config.json").write_text("{}")
    (src / MANIFEST).write_text('{"files": {}}')  # a stale manifest in the source is never written through
    linked = store.put_dir("jobs/a/linked", src, link=True)
    copied = store.put_dir("jobs/a/copied", src)
    assert linked.sha256 == copied.sha256 and linked.size == copied.size == 1002
    local = store.local_path(linked)
    assert (local / "model.safetensors").stat().st_ino == (src / "model.safetensors").stat().st_ino
    assert (store.local_path(copied) / "model.safetensors").stat().st_ino != (src / "model.safetensors").stat().st_ino
    assert (src / MANIFEST).read_text() == '{"files": {}}'
    assert set(json.loads((local / MANIFEST).read_text())["files"]) == {"model.safetensors", "sub/config.json"}


def test_put_dir_with_link_copies_across_filesystems(tmp_path: Path) -> None:
    """/dev/shm is another filesystem (tmpfs): os.link fails with EXDEV and the bytes are copied."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second filesystem at /dev/shm")
    src = Path(tempfile.mkdtemp(dir=shm))
    try:
        (src / "model.safetensors").write_bytes(b"w" * 100)
        store = ArtifactStore((tmp_path / "store").as_uri())
        ref = store.put_dir("jobs/a/merged", src, link=True)
        stored = store.local_path(ref) / "model.safetensors"
        assert stored.read_bytes() == b"w" * 100 and stored.stat().st_dev != src.stat().st_dev
    finally:
        shutil.rmtree(src)


def test_holds_tells_paths_inside_the_store(store: ArtifactStore, tmp_path: Path) -> None:
    ref = store.put_bytes("jobs/a/x.txt", b"x")
    assert store.holds(Path(store.full_path(ref.uri)))
    assert not store.holds(tmp_path / "elsewhere")
    assert not store.holds(Path(store.root) / ".." / "store-sibling")


def test_missing_artifact_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFound):
        store.read_bytes("nothing/here")
