"""The StartExport operation: checkpoint → ONNX fp32 → parity → quantized variants (each with its
own parity) → bundle (checkpoint + adapter + ONNX + model card + usage) in the artifact store.

Resumable: each finished step leaves its directory in the operation's work dir (written under a
``.partial`` name and renamed when complete), so a restarted job skips what is done."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.artifacts import MANIFEST, Artifact, link_or_copy
from services.common.enums import quantization
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.jobs import OperationContext
from services.common.jsonl import read_jsonl
from services.common.references import ModelReferences
from services.common.taskspec import TaskSpec
from services.serving import bundle as bundle_mod
from services.serving.export import check_checkpoint, export_onnx
from services.serving.gguf import add_to_bundle
from services.serving.model_card import write_model_card
from services.serving.parity import DEFAULT_INPUTS, TorchReference, check_parity
from services.serving.quantize import quantize
from services.serving.repository import ModelRepository
from services.serving.runtime import OnnxGenerator

log = logging.getLogger(__name__)
KIND = "export"
DEFAULT_MIN_PARITY = 0.9


@dataclass
class VariantResult:
    quantization: str
    path: Path
    parity: dict[str, Any]
    accepted: bool
    reason: str = ""
    size_bytes: int = 0


@dataclass
class ExportOutcome:
    bundle: Path
    variants: list[VariantResult] = field(default_factory=list)
    gguf: list[dict[str, Any]] = field(default_factory=list)  # GgufFile.to_dict: quantization, path, size, error


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_export(checkpoint: Path, spec: TaskSpec, work_dir: Path, quantizations: Sequence[str] = (),
               min_parity: float = DEFAULT_MIN_PARITY, model_name: str = "student", model_version: str = "1",
               parity_inputs: Sequence[tuple[str, str]] | None = None, adapter: Path | None = None,
               progress: Callable[..., None] | None = None, link_inputs: bool = False,
               gguf: Sequence[str] = ()) -> ExportOutcome:
    """Build the bundle in ``work_dir/bundle``. Raises FailedPrecondition when the fp32 export itself
    is below ``min_parity``; quantized variants below it are refused (left out, with the numbers).
    ``link_inputs``: hard-link the checkpoint and adapter into the bundle (sealed store artifacts
    only) instead of copying them. ``gguf``: GGUF files for llama.cpp / Ollama beside the ONNX
    (services/serving/gguf.py; one that cannot be made is reported in the card, not fatal)."""
    progress = progress or (lambda **_: None)
    if not 0.0 <= min_parity <= 1.0:
        raise InvalidArgument(f"min_parity={min_parity} must be between 0 and 1")
    check_checkpoint(checkpoint)
    bundle = work_dir / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    inputs = list(parity_inputs or [(text, "") for text in DEFAULT_INPUTS])
    steps = 2 + 2 * len(quantizations)
    progress(stage="exporting fp32", done=0, total=steps, unit="steps")
    fp32 = bundle_mod.variant_dir(bundle, "none")
    if not (fp32 / "model.onnx").exists():
        export_onnx(checkpoint, fp32)
    reference = TorchReference(checkpoint)
    variants: list[VariantResult] = []
    done = 1
    for kind in ["none", *[q for q in quantizations if q != "none"]]:
        path = bundle_mod.variant_dir(bundle, kind)
        if kind != "none":
            progress(stage=f"quantizing {kind}", done=done, total=steps)
            if not (path / "model.onnx").exists():
                partial = path.with_name(path.name + ".partial")
                quantize(kind, fp32, partial)
                partial.rename(path)
            done += 1
        progress(stage=f"parity {kind}", done=done, total=steps)
        report = check_parity(reference, OnnxGenerator(path, spec), spec, inputs).to_dict()
        done += 1
        accepted = report["agreement"] >= min_parity
        reason = "" if accepted else (f"{report['metric']} {report['agreement']:.3f} < min_parity {min_parity:.3f} "
                                      f"on {report['samples']} inputs ({report['positions']} positions)")
        variants.append(VariantResult(kind, path, report, accepted, reason, _dir_size(path)))
        log.info("parity %s: %s %.3f (%s)", kind, report["metric"], report["agreement"],
                 "accepted" if accepted else "refused")
        if kind == "none" and not accepted:
            raise FailedPrecondition(f"ONNX export refused: {reason}")
        if not accepted:
            shutil.rmtree(path, ignore_errors=True)
    del reference
    progress(stage="bundling", done=done, total=steps)
    # Sealed store artifacts are never rewritten in place, so the bundle links them (the 500 MB
    # checkpoint is not stored twice); a user's own folder is copied, since its owner may rewrite it.
    copy = link_or_copy if link_inputs else shutil.copy2
    target = bundle / "checkpoint"
    if not target.exists():
        shutil.copytree(checkpoint, target, ignore=shutil.ignore_patterns(MANIFEST), copy_function=copy)
    if adapter is not None and not (bundle / "adapter").exists():
        shutil.copytree(adapter, bundle / "adapter", ignore=shutil.ignore_patterns(MANIFEST), copy_function=copy)
    bundle_mod.write_task(bundle, spec)
    bundle_mod.write_usage(bundle, model_name, inputs[0][0])
    if gguf:
        progress(stage="GGUF for llama.cpp / Ollama", done=done, total=steps)
    gguf_files = [f.to_dict(bundle) for f in add_to_bundle(target, bundle, spec, list(gguf), model_name, inputs[0][0])]
    write_model_card(bundle / "MODEL_CARD.md", {
        "name": model_name, "version": model_version, "task": spec.to_dict(), "base": str(checkpoint),
        "min_parity": min_parity, "adapter": adapter is not None, "gguf": gguf_files,
        "variants": [{"quantization": v.quantization, "parity": v.parity, "accepted": v.accepted,
                      "reason": v.reason, "size_bytes": v.size_bytes,
                      "dir": bundle_mod.VARIANT_DIRS[v.quantization] if v.accepted else ""} for v in variants],
    })
    progress(stage="done", done=steps, total=steps)
    return ExportOutcome(bundle, variants, gguf_files)


def load_parity_inputs(path: Path) -> list[tuple[str, str]]:
    rows = read_jsonl(path) if path.exists() else []
    pairs = [(str(r.get("input", "")), str(r.get("context") or "")) for r in rows if r.get("input")]
    if not pairs:
        raise InvalidArgument(f"{path}: no rows with an 'input' for the parity check")
    return pairs[:32]


@dataclass(frozen=True)
class ExportJob:
    """What StartExport asks for, as typed objects (the servicer builds it from the request)."""

    spec: TaskSpec
    model: Artifact
    adapter: Artifact | None = None
    quantizations: tuple[str, ...] = ()  # short names: int8, int4
    parity_inputs: Artifact | None = None
    min_parity: float = DEFAULT_MIN_PARITY
    model_name: str = ""     # "" : export only; else also load the fp32 bundle under this name
    model_version: str = ""
    gguf: tuple[str, ...] = ()  # GGUF files for llama.cpp / Ollama: q8_0, q4_k_m, f16


def export_handler(repository: ModelRepository, references: ModelReferences,
                   job_from_record: Callable[[dict[str, Any]], ExportJob]) -> Callable[[OperationContext], dict[str, Any]]:
    """The "export" job body. ``job_from_record`` turns the persisted request into an ExportJob
    (the servicer's converter: this module never sees protobuf)."""
    def handle(op: OperationContext) -> dict[str, Any]:
        job = job_from_record(op.request)
        spec = job.spec
        checkpoint = references.resolve(job.model, "model.uri")
        adapter = references.resolve(job.adapter, "adapter.uri", "adapter") if job.adapter else None
        parity_inputs = (load_parity_inputs(references.resolve(job.parity_inputs, "parity_inputs.uri", "file"))
                         if job.parity_inputs else None)
        name = job.model_name or spec.name or "student"
        version = job.model_version or "1"

        def progress(**kwargs: Any) -> None:
            op.check_cancelled()
            op.progress(**kwargs)

        outcome = run_export(checkpoint, spec, op.work_dir, list(job.quantizations), job.min_parity, name, version,
                             parity_inputs, adapter, progress,
                             link_inputs=op.store.holds(checkpoint) and (adapter is None or op.store.holds(adapter)),
                             gguf=job.gguf)
        key = op.output_key("bundle")
        bundle = op.store.put_dir(key, outcome.bundle, link=True)
        # The store holds the bundle now (hard links on a local store: the work copy cost no disk).
        # Dropping the work copy frees the disk on other stores and keeps a later run of this
        # operation from rewriting the stored files through those links.
        shutil.rmtree(outcome.bundle, ignore_errors=True)
        stored_files = op.store.read_json(f"{key}/{MANIFEST}")["files"]
        card = op.store.put_bytes(op.output_key("MODEL_CARD.md"), op.store.read_bytes(f"{key}/MODEL_CARD.md"))
        variants = []
        for v in outcome.variants:
            entry: dict[str, Any] = {"quantization": quantization(v.quantization),
                                     "parity": v.parity["agreement"], "accepted": v.accepted, "reason": v.reason}
            if v.accepted:
                rel = f"{bundle_mod.VARIANT_DIRS[v.quantization]}/model.onnx"
                entry["onnx"] = Artifact(op.store.uri_for(f"{key}/{rel}"), str(stored_files[rel]["sha256"]),
                                         int(stored_files[rel]["size"])).to_dict()
            variants.append(entry)
        if job.model_name:
            local = op.store.local_path(bundle.uri, verify=False)
            repository.load(name, local, version, "none", spec, bundle.uri)
        return {"variants": variants, "bundle": bundle.to_dict(), "model_card": card.to_dict(),
                "model_name": name, "model_version": version, "gguf": outcome.gguf}

    return handle
