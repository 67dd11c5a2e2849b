"""DISTILLERY_TRAINER_MODE=k8s-job: each training operation runs as a Kubernetes batch/v1 Job.

The trainer service stays the API (StartTraining, the operation the user watches, cancel); the
work runs in a Job that requests the GPUs (``DISTILLERY_TRAINER_JOB_GPUS``; more than one runs
torchrun with one process per GPU; ``DISTILLERY_TRAINER_JOB_NODES`` > 1 spans that many pods as an
Indexed Job with torchrun's rendezvous on pod 0) and runs ``python -m services.trainer.run_job`` in the
trainer's own image, on the same store volume:

- the request goes to the store (``<output prefix>/job-request.json``), the run directory is
  ``training-jobs/<operation id>/`` on that volume: checkpoints, and ``result.json`` written
  atomically when the run ends (run_job's contract);
- the Job is named after the operation, so a trainer restarted mid-run finds its Job again
  (AlreadyExists → follow it) instead of starting a second one;
- its state (PENDING with the scheduler's reason, RUNNING) and the last progress line the pod
  printed reach the operation's metadata; a failed Job fails the operation with its message and
  the tail of its log; cancelling the operation deletes the Job (and so its pods).

Needs a file:// store on a volume both pods mount (k8s/base: the store PVC)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common import envs
from services.common.artifacts import ArtifactStore
from services.common.errors import AlreadyExists, Cancelled, DistilleryError, FailedPrecondition
from services.trainer.handler import RESULT_FILE
from services.trainer.k8s_jobs import (
    STORE_MOUNT,
    JobPhase,
    KubernetesJobLauncher,
    TrainingJobSpec,
    default_namespace,
    parse_node_selector,
)

log = logging.getLogger(__name__)

RUNS_PREFIX = "training-jobs"
REQUEST_FILE = "job-request.json"


@dataclass
class JobModeSettings:
    """What every training Job gets (from the environment: DISTILLERY_TRAINER_JOB_*)."""

    image: str
    gpus: int = 0
    nodes: int = 1
    cpu: str = "4"
    memory: str = "32Gi"
    namespace: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    poll_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> JobModeSettings:
        image = envs.TRAINER_JOB_IMAGE.get()
        if not image:
            raise FailedPrecondition("DISTILLERY_TRAINER_MODE=k8s-job needs DISTILLERY_TRAINER_JOB_IMAGE (the "
                                     "trainer's image; the gpu overlay fills it in)")
        return cls(image=image, gpus=envs.TRAINER_JOB_GPUS.get(), nodes=envs.TRAINER_JOB_NODES.get(),
                   cpu=envs.TRAINER_JOB_CPU.get(),
                   memory=envs.TRAINER_JOB_MEMORY.get(), namespace=envs.K8S_NAMESPACE.get() or default_namespace(),
                   node_selector=parse_node_selector(envs.TRAINER_JOB_NODE_SELECTOR.get()))


def job_name(operation_id: str) -> str:
    """A DNS-1123 label of at most 63 characters, one per operation."""
    return f"distillery-train-{operation_id.lower()}"[:63].rstrip("-")


def job_spec(settings: JobModeSettings, name: str, request_path: str, run_dir: str) -> TrainingJobSpec:
    command = ["python", "-m", "services.trainer.run_job", "--request", request_path, "--out", run_dir,
               "--store-only"]
    return TrainingJobSpec(name=name, namespace=settings.namespace, image=settings.image, command=command,
                           env={"DISTILLERY_STORE_URL": Path(STORE_MOUNT).as_uri()}, gpus=settings.gpus,
                           nodes=settings.nodes,
                           cpu=settings.cpu, memory=settings.memory, node_selector=dict(settings.node_selector),
                           labels={"distillery.dev/operation": name.removeprefix("distillery-train-")})


def _last_progress(log_text: str) -> dict[str, Any] | None:
    """run_job prints one JSON object per progress update: the last one in the log."""
    for line in reversed(log_text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "result" not in value:
                return value
    return None


def run_as_job(ctx: Any, request: dict[str, Any], launcher: KubernetesJobLauncher, settings: JobModeSettings,
               store: ArtifactStore, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The training operation ``ctx`` as a Job; returns run_job's TrainingResult (as a dict)."""
    operation_id = ctx.record.short_id
    name = job_name(operation_id)
    request_key = ctx.output_key(REQUEST_FILE)
    run_key = f"{RUNS_PREFIX}/{operation_id}"
    store.put_bytes(request_key, json.dumps(request, sort_keys=True).encode())
    spec = job_spec(settings, name, f"{STORE_MOUNT}/{request_key}", f"{STORE_MOUNT}/{run_key}")
    try:
        launcher.create(spec)
        log.info("training %s runs as Job %s/%s (%d node(s) x %d GPU)", ctx.record.name, settings.namespace, name,
                 settings.nodes, settings.gpus)
    except AlreadyExists:  # a restarted trainer: the Job of this operation runs already
        log.info("training %s: following its existing Job %s/%s", ctx.record.name, settings.namespace, name)
    result_path = Path(store.full_path(f"{run_key}/{RESULT_FILE}"))
    while True:
        if ctx.cancelled():
            launcher.delete(name)
            raise Cancelled(f"training cancelled: Job {name} deleted")
        status = launcher.status(name)
        counters = {"job_active": float(status.active), "job_failed_pods": float(status.failed)}
        progress: dict[str, Any] | None = None
        if status.state == JobPhase.RUNNING:
            try:
                progress = _last_progress(launcher.logs(name, tail_lines=20))
            except DistilleryError:  # no pod on a node yet, or its log is not readable yet
                progress = None
        if progress:
            counters.update({k: float(v) for k, v in progress.items()
                             if isinstance(v, (int, float)) and k not in ("time", "step", "total")})
        ctx.progress(stage=f"job {status.state.value.lower()}", message=status.message,
                     done=progress.get("step") if progress else None, total=progress.get("total") if progress else None,
                     unit="steps", counters=counters, force=True)
        if status.state == JobPhase.SUCCEEDED:
            if not result_path.exists():
                raise FailedPrecondition(f"Job {name} succeeded but wrote no {run_key}/{RESULT_FILE}: is the store "
                                         "volume the same in the trainer and the Job?")
            return dict(json.loads(result_path.read_text()))
        if status.state == JobPhase.FAILED:
            try:
                tail = launcher.logs(name, tail_lines=20).strip()
            except DistilleryError:
                tail = ""
            raise FailedPrecondition(f"training Job {name} failed: {status.message}"
                                     + (f"; its log ends: {tail[-1500:]}" if tail else ""))
        sleep(settings.poll_seconds)
