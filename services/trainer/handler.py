"""The training job: a TrainingJob → train → adapter + merged checkpoint + metrics in the store.

Core code (no grpc): the service's JobRunner calls ``handle_training`` with its OperationContext
and the TrainingJob its servicer module read from the stored request; ``run_job`` (Kubernetes
Jobs, torchrun) calls ``run_training`` with a small context of its own. Both contexts offer:
work_dir, store, output_key(name), progress(...), cancelled()."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.common.artifacts import Artifact, ArtifactStore
from services.common.atomic import write_json_atomic
from services.common.enums import ModelFormat
from services.common.references import ModelReferences
from services.common.taskspec import TaskSpec
from services.trainer.config import TrainingConfig
from services.trainer.data import load_examples
from services.trainer.devices import Runtime, release_memory, setup_runtime, teardown_runtime
from services.trainer.loop import Callbacks, StepInfo, train
from services.trainer.merge import save_adapter, save_merged

log = logging.getLogger(__name__)

KIND = "training"
RESULT_FILE = "result.json"


class JobContext(Protocol):
    work_dir: Path
    store: ArtifactStore

    def output_key(self, filename: str) -> str: ...

    def progress(self, **kwargs: Any) -> None: ...

    def cancelled(self) -> bool: ...


@dataclass
class TrainingJob:
    """One training, as its request asks for it (read by the servicer module from protobuf)."""

    spec: TaskSpec
    config: TrainingConfig  # the task's training section with the request's overrides
    train: Artifact  # the accepted rows (or, for the seed-only student, the seeds)
    student: str  # the base model reference: catalog name, directory or artifact URI
    seeds: Artifact | None = None  # mixed into the training rows when set


def local_train_file(ref: Artifact, references: ModelReferences, allow_local_paths: bool, what: str) -> Path:
    """A training file: an artifact of the store (verified against its sha256). The command-line
    runner (``run_job``, the user's own process) may also name a local file."""
    if allow_local_paths:
        candidate = Path(ref.uri[len("file://"):] if ref.uri.startswith("file://") else ref.uri)
        if candidate.is_file() and not references.store.holds(candidate):
            return candidate
    return references.resolve(ref, what, kind="file")


# --------------------------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------------------------
class ProgressCallbacks(Callbacks):
    """Maps loop events onto ctx.progress (stage, step counters) and cancellation."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.eval_loss: float | None = None

    def on_step(self, info: StepInfo) -> None:
        counters = {"loss": info.loss, "learning_rate": info.learning_rate,
                    "tokens_per_second": info.tokens_per_second, "eta_seconds": info.eta_seconds,
                    "epoch": info.epoch}
        if self.eval_loss is not None:
            counters["eval_loss"] = self.eval_loss
        stage = f"epoch {info.epoch}/{info.epochs}" if info.epochs else f"epoch {info.epoch}"
        self.ctx.progress(done=info.step, total=info.total_steps, stage=stage, unit="steps", counters=counters)

    def on_eval(self, epoch: float, step: int, eval_loss: float) -> None:
        self.eval_loss = eval_loss
        self.ctx.progress(counters={"eval_loss": eval_loss}, message=f"eval loss {eval_loss:.4f} after {epoch:g} epoch(s)",
                          force=True)

    def on_checkpoint(self, path: Path, step: int) -> None:
        self.ctx.progress(counters={"checkpoint_step": step}, force=True)

    def should_stop(self) -> bool:
        return self.ctx.cancelled()


# --------------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------------
def run_training(ctx: JobContext, job: TrainingJob, references: ModelReferences, device: str = "auto",
                 allow_local_paths: bool = False,
                 runtime_factory: Callable[[str, str], Runtime] = setup_runtime) -> dict[str, Any]:
    """Train, write adapter/merged/metrics into the store and return the TrainingResult dict.
    A finished result is remembered in the work dir, so a restart after the upload is a no-op."""
    done_file = ctx.work_dir / RESULT_FILE
    if done_file.is_file():
        return json.loads(done_file.read_text())
    spec, config, base_ref = job.spec, job.config, job.student
    if config.device == "auto" and device != "auto":
        config.device = device
    ctx.progress(stage="loading", message=f"resolving student {base_ref}", force=True)
    model_dir = references.resolve(base_ref, "student.uri", kind="checkpoint")
    seeds = (load_examples(local_train_file(job.seeds, references, allow_local_paths, "seeds.uri"))
             if job.seeds else [])
    # With seeds in the mix an empty accepted.jsonl still trains a student (on the seeds alone).
    examples = load_examples(local_train_file(job.train, references, allow_local_paths, "train.uri"),
                             allow_empty=bool(seeds))

    runtime = runtime_factory(config.device, config.dtype)
    try:
        outcome = train(model_dir, spec, examples, config, ctx.work_dir, runtime,
                        ProgressCallbacks(ctx) if runtime.is_main else Callbacks(), seeds=seeds)
        if not runtime.is_main:
            return {}
        ctx.progress(stage="saving", message="writing adapter and merged checkpoint", force=True)
        out = ctx.work_dir / "output"
        started = time.time()
        adapter_art = None
        if not config.full_finetune:
            adapter_dir = save_adapter(outcome.model, outcome.tokenizer, out / "adapter", base_ref)
            adapter_art = ctx.store.put_dir(ctx.output_key("adapter"), adapter_dir, link=True)
        merged_dir = save_merged(outcome.model, outcome.tokenizer, out / "merged", model_dir, config.merged_dtype,
                                 runtime.merged_dtype)
        # link=True: `out` is deleted below and save_* start from an empty folder, so nothing
        # rewrites these files through the links; the store gets them without a 500 MB copy.
        merged_art = ctx.store.put_dir(ctx.output_key("merged"), merged_dir, link=True)
        metrics = dict(outcome.metrics)
        metrics["base_model"] = base_ref
        metrics["save_seconds"] = time.time() - started
        metrics_art = ctx.store.put_json(ctx.output_key("metrics.json"), metrics)
    finally:
        teardown_runtime(runtime)

    result: dict[str, Any] = {
        "merged": {"uri": merged_art.uri, "format": ModelFormat.HF, "base": base_ref},
        "merged_artifact": merged_art.to_dict(),
        "metrics": metrics_art.to_dict(),
        "steps": outcome.steps,
        "final_train_loss": outcome.final_train_loss,
        "final_eval_loss": outcome.final_eval_loss if outcome.final_eval_loss is not None else 0.0,
        "seconds": outcome.seconds,
        "device": runtime.describe(),
    }
    if adapter_art is not None:
        result["adapter"] = {"uri": adapter_art.uri, "format": ModelFormat.PEFT_ADAPTER, "base": base_ref}
        result["adapter_artifact"] = adapter_art.to_dict()
    write_json_atomic(done_file, result)
    # the store holds the outputs now; the local copies and the checkpoints are only disk
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(ctx.work_dir / "checkpoints", ignore_errors=True)
    ctx.progress(stage="done", done=outcome.steps, total=outcome.steps, force=True)
    return result


def make_handler(references: ModelReferences, device: str = "auto") -> Callable[[Any, TrainingJob], dict[str, Any]]:
    """The handler of "training" operations (the servicer module gives it the job)."""

    def handle_training(ctx: Any, job: TrainingJob) -> dict[str, Any]:
        try:
            return run_training(ctx, job, references, device)
        finally:
            release_memory()  # the run's model and activations are garbage now: return them

    return handle_training
