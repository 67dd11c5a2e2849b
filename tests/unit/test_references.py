"""ModelReferences: the one resolver every service sends a request's model/artifact reference
through. Real files, a real store; the catalog branch uses the materialized bundled student."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.common.artifacts import MANIFEST, ArtifactStore
from services.common.config import ServiceConfig
from services.common.errors import DataLoss, InvalidArgument, NotFound, PermissionDenied, UnsafeModelError
from services.common.references import ModelReferences, parse_roots


def _checkpoint(directory: Path, weights: str = "model.safetensors") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text("{}")
    (directory / weights).write_bytes(b"weights")
    return directory


@pytest.fixture()
def refs(tmp_path: Path) -> ModelReferences:
    store = ArtifactStore((tmp_path / "store").as_uri())
    return ModelReferences(store, tmp_path / "models", (tmp_path / "allowed",))


def test_store_uri_of_a_sealed_directory_resolves_and_is_verified(refs: ModelReferences, tmp_path: Path) -> None:
    art = refs.store.put_dir("run/merged", _checkpoint(tmp_path / "work" / "merged"))
    path = refs.resolve(art, "student.uri")
    assert path == Path(refs.store.full_path("run/merged"))
    assert refs.resolve(art.uri, "student.uri") == path  # a bare URI string: the manifest still checks it


def test_a_directory_whose_file_was_altered_is_data_loss(refs: ModelReferences, tmp_path: Path) -> None:
    art = refs.store.put_dir("run/merged", _checkpoint(tmp_path / "work" / "merged"))
    stored = Path(refs.store.full_path("run/merged")) / "model.safetensors"
    stored.unlink()  # a hard link to the work copy: replace, don't write through it
    stored.write_bytes(b"WEIGHTS")  # same size, other bytes: only the per-file sha256 sees it
    with pytest.raises(DataLoss, match="model.safetensors is corrupt"):
        refs.resolve(art, "student.uri")


def test_an_unsealed_store_directory_is_never_read_as_whole(refs: ModelReferences) -> None:
    half = Path(refs.store.full_path("run/half"))
    _checkpoint(half)
    with pytest.raises(DataLoss, match=MANIFEST):
        refs.resolve(half.as_uri(), "model.uri")


@pytest.mark.parametrize("escape", ["/etc", "../../etc", "{store}/../outside", "file:///etc"])
def test_paths_outside_the_allowed_roots_are_permission_denied(refs: ModelReferences, tmp_path: Path,
                                                               escape: str) -> None:
    _checkpoint(tmp_path / "outside")
    ref = escape.format(store=refs.store.root)
    with pytest.raises(PermissionDenied, match="DISTILLERY_MODEL_ROOTS") as caught:
        refs.resolve(ref, "bundle.uri", "directory")
    assert "bundle.uri" in str(caught.value)
    with pytest.raises(PermissionDenied):
        refs.check(ref, "bundle.uri", "directory")


def test_a_symlink_inside_a_root_that_points_out_is_refused(refs: ModelReferences, tmp_path: Path) -> None:
    outside = _checkpoint(tmp_path / "outside")
    (tmp_path / "allowed").mkdir()
    os.symlink(outside, tmp_path / "allowed" / "link")
    with pytest.raises(PermissionDenied):
        refs.resolve(str(tmp_path / "allowed" / "link"), "student.uri")


def test_a_path_under_a_configured_root_resolves(refs: ModelReferences, tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "allowed" / "my-model")
    assert refs.resolve(str(ckpt), "student.uri") == ckpt.resolve()
    assert refs.resolve(ckpt.as_uri(), "student.uri") == ckpt.resolve()


@pytest.mark.parametrize("where", ["allowed", "store"])
def test_pickle_only_weights_are_refused_on_every_branch(refs: ModelReferences, tmp_path: Path, where: str) -> None:
    if where == "allowed":
        ref: object = str(_checkpoint(tmp_path / "allowed" / "pickled", "pytorch_model.bin"))
    else:
        ref = refs.store.put_dir("run/pickled", _checkpoint(tmp_path / "work" / "pickled", "pytorch_model.bin"))
    with pytest.raises(UnsafeModelError, match="pickle"):
        refs.resolve(ref, "student.uri")  # type: ignore[arg-type]


def test_an_adapter_must_be_safetensors(refs: ModelReferences, tmp_path: Path) -> None:
    adapter = tmp_path / "allowed" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(UnsafeModelError):
        refs.resolve(str(adapter), "adapter.uri", "adapter")


def test_foreign_schemes_and_empty_references_are_invalid(refs: ModelReferences) -> None:
    with pytest.raises(InvalidArgument, match="s3"):
        refs.resolve("s3://someone-else/model", "model.uri")
    with pytest.raises(InvalidArgument, match="model.uri is empty"):
        refs.resolve("", "model.uri")


def test_missing_path_inside_a_root_is_not_found(refs: ModelReferences, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        refs.resolve(str(tmp_path / "allowed" / "nothing"), "student.uri")


def test_a_catalog_name_resolves_into_the_model_cache(model_cache: Path, tmp_path: Path) -> None:
    refs = ModelReferences(ArtifactStore((tmp_path / "store").as_uri()), model_cache)
    path = refs.resolve("smollm2-135m-instruct", "student.uri")
    assert path.is_relative_to(model_cache.resolve()) and list(path.glob("*.safetensors"))
    refs.check("smollm2-135m-instruct", "student.uri")  # no PermissionDenied for a catalog name


def test_model_roots_come_from_the_environment(tmp_path: Path) -> None:
    env = {"DISTILLERY_HOME": str(tmp_path), "DISTILLERY_MODEL_ROOTS": f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"}
    config = ServiceConfig.from_env("trainer", env)
    assert config.model_roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    assert parse_roots("") == ()
