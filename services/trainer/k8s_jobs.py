"""Run training as Kubernetes batch/v1 Jobs (DISTILLERY_TRAINER_MODE=k8s-job).

Why Jobs: a GPU should be held only while a model trains, not by an idle trainer pod, and a Job
gives retries (backoffLimit), clean-up (ttlSecondsAfterFinished) and scheduling onto GPU nodes for
free. The pipeline and the trainer both use this module; neither needs anything beyond the RBAC in
k8s/base/rbac.yaml (jobs: create/get/list/watch/delete, pods: get/list/watch, pods/log: get).

Layout:
- ``build_job_manifest(spec)`` is a pure function from a ``TrainingJobSpec`` to the Job body as a
  plain dict, so it is unit-tested without a cluster (tests/k8s/test_job_manifest.py).
- ``KubernetesJobLauncher`` talks to the API server through the official ``kubernetes`` client,
  imported lazily so that importing this module (and building manifests) never requires it.
  It translates API failures into the platform's typed errors (services.common.errors), which the
  gRPC edge maps to status codes.

No grpc import here: this is core code.
"""

from __future__ import annotations

import enum
import json
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common import envs
from services.common.errors import (
    AlreadyExists,
    DistilleryError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)

if TYPE_CHECKING:  # the kubernetes client is an optional dependency of the core env
    from kubernetes.client import ApiClient

__all__ = [
    "CONTAINER_NAME",
    "JOB_NAME_LABEL",
    "JobPhase",
    "JobStatus",
    "KubernetesJobLauncher",
    "TrainingJobSpec",
    "build_job_manifest",
    "build_rendezvous_service",
    "default_namespace",
    "parse_node_selector",
    "torchrun_command",
]

#: The one container of a training Job's pod (``logs`` reads it).
CONTAINER_NAME = "trainer"
#: Our own label that ties pods to their Job. Kubernetes adds ``batch.kubernetes.io/job-name``
#: too, but only from 1.27 on (``job-name`` before); a label we set works on every version.
JOB_NAME_LABEL = "app.kubernetes.io/instance"
#: Where the artifact store PVC is mounted, matching every Deployment in k8s/base.
STORE_MOUNT = "/var/lib/distillery/store"
STATE_DIR = "/var/lib/distillery"
CACHE_DIR = "/home/distillery/.cache"
#: Same non-root identity as the service images (docker/*.Dockerfile: user 10001).
RUN_AS_USER = 10001
GPU_RESOURCE = "nvidia.com/gpu"
#: torchrun's rendezvous port on node 0 of a multi-node Job (its TCP store and the process group).
RENDEZVOUS_PORT = 29500
#: The node's rank in a multi-node Job: the pod's completion index, through the downward API (a
#: name of our own, not JOB_COMPLETION_INDEX, which the Job controller itself adds from 1.22 on).
NODE_RANK_ENV = "TORCHRUN_NODE_RANK"
_COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
#: Default ConfigMap whose keys become the Job's environment (store URL, device, offline flags),
#: so a training Job sees the same configuration as the services.
CONFIG_MAP = "distillery-config"

# A Job's name becomes the value of the ``job-name`` label on its pods: a DNS-1123 label of at
# most 63 characters.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)
_SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class JobPhase(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class JobStatus:
    state: JobPhase
    message: str = ""
    active: int = 0
    succeeded: int = 0
    failed: int = 0

    @property
    def done(self) -> bool:
        return self.state in (JobPhase.SUCCEEDED, JobPhase.FAILED)


@dataclass
class TrainingJobSpec:
    """One training run as a Kubernetes Job.

    ``command`` is the trainer program, e.g. ``["python", "-m", "services.trainer.run_job",
    "--config", "/var/lib/distillery/store/runs/r1/train.json"]``. With ``gpus > 1`` it is rewritten
    to ``torchrun --standalone --nnodes=1 --nproc_per_node=<gpus> -m services.trainer.run_job ...``:
    the world size is decided here, from the GPUs the Job asks for, so the two cannot disagree.

    ``nodes > 1`` makes it an Indexed Job of that many pods (one per node, each with ``gpus``
    GPUs) behind a headless Service of the Job's name: pod ``<name>-<i>`` runs torchrun with
    ``--nnodes=<nodes> --node_rank=<i>`` and the static rendezvous at ``<name>-0.<name>:29500``,
    so the world size is ``nodes × max(gpus, 1)``.
    """

    name: str
    namespace: str
    image: str
    command: list[str]
    env: dict[str, str]
    gpus: int
    cpu: str
    memory: str
    backoff_limit: int = 2
    ttl_seconds_after_finished: int = 3600
    store_pvc: str = "distillery-store"
    # Everything below has a default that fits k8s/base; override for unusual clusters.
    service_account: str = "distillery"
    node_selector: dict[str, str] = field(default_factory=dict)
    #: None: tolerate the usual ``nvidia.com/gpu:NoSchedule`` taint when ``gpus > 0``.
    tolerations: list[dict[str, Any]] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: Kill the Job if it runs longer than this (None: no limit).
    active_deadline_seconds: int | None = None
    #: envFrom this ConfigMap (optional, so a missing one is not an error); None: none.
    config_map: str | None = CONFIG_MAP
    #: Size of the in-memory /dev/shm (NCCL and DataLoader workers need more than 64 MiB).
    shm_size: str = "8Gi"
    image_pull_policy: str = "IfNotPresent"
    #: Pods (nodes) the training spans; > 1: an Indexed Job with torchrun's rendezvous on pod 0.
    nodes: int = 1


def _validate(spec: TrainingJobSpec) -> None:
    if len(spec.name) > 63 or not _DNS1123_LABEL.match(spec.name):
        raise InvalidArgument(
            f"job name {spec.name!r} is not a valid Kubernetes name: use at most 63 lower-case "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    if not spec.namespace or not _DNS1123_LABEL.match(spec.namespace):
        raise InvalidArgument(f"namespace {spec.namespace!r} is not a valid Kubernetes namespace name")
    if not spec.image:
        raise InvalidArgument(f"job {spec.name}: image is empty")
    if not spec.command:
        raise InvalidArgument(f"job {spec.name}: command is empty")
    if spec.gpus < 0:
        raise InvalidArgument(f"job {spec.name}: gpus must be >= 0, got {spec.gpus}")
    if spec.nodes < 1:
        raise InvalidArgument(f"job {spec.name}: nodes must be >= 1, got {spec.nodes}")
    if spec.nodes > 1 and len(f"{spec.name}-{spec.nodes - 1}") > 63:
        # Pod i of an Indexed Job is the host <name>-<i>, itself a DNS-1123 label.
        raise InvalidArgument(f"job {spec.name}: a {spec.nodes}-node job needs a name of at most "
                              f"{63 - len(str(spec.nodes - 1)) - 1} characters (its pods are <name>-<index>)")
    if spec.backoff_limit < 0:
        raise InvalidArgument(f"job {spec.name}: backoff_limit must be >= 0, got {spec.backoff_limit}")
    if spec.ttl_seconds_after_finished < 0:
        raise InvalidArgument(
            f"job {spec.name}: ttl_seconds_after_finished must be >= 0, got {spec.ttl_seconds_after_finished}"
        )
    for key in spec.env:
        if not key or "=" in key:
            raise InvalidArgument(f"job {spec.name}: invalid environment variable name {key!r}")


def rendezvous_host(name: str, namespace: str) -> str:
    """Pod 0 of the multi-node Job ``name``: its hostname under the headless Service of that name."""
    return f"{name}-0.{name}.{namespace}.svc"


def torchrun_command(command: Sequence[str], gpus: int, nodes: int = 1, rendezvous: str = "",
                     node_rank: str = f"$({NODE_RANK_ENV})") -> list[str]:
    """Wrap a Python trainer command in torchrun when it should use more than one GPU or node.

    ``python -m mod args`` and ``python script.py args`` (or the same without the interpreter)
    become ``torchrun --standalone --nnodes=1 --nproc_per_node=<gpus> -m mod args``. torchrun then
    sets WORLD_SIZE/RANK/LOCAL_RANK for each worker. With ``nodes > 1`` the rendezvous is static
    on ``rendezvous`` (pod 0's host) and this pod's ``--node_rank`` is ``node_rank`` — by default
    ``$(TORCHRUN_NODE_RANK)``, which Kubernetes expands from the container's environment (the
    completion index). Static, not c10d: every pod knows its rank from the index, so there is no
    election to wait for, and a failed pod fails the run, which the Job retries from the last
    checkpoint. A command already starting with torchrun is left alone; anything else cannot be
    wrapped and is rejected rather than silently run on 1 GPU.
    """
    argv = list(command)
    if (gpus <= 1 and nodes <= 1) or not argv:
        return argv
    if Path(argv[0]).name == "torchrun":
        return argv
    rest = argv[1:] if _PYTHON.match(Path(argv[0]).name) else argv
    if not rest or not (rest[0] == "-m" or rest[0].endswith(".py")):
        where = f"{nodes} nodes" if nodes > 1 else f"{gpus} GPUs"
        raise InvalidArgument(
            f"cannot run {shlex.join(argv)!r} on {where}: a distributed job needs a Python command "
            "('python -m module ...' or 'python script.py ...') so that it can be started with torchrun"
        )
    per_node = f"--nproc_per_node={max(gpus, 1)}"
    if nodes <= 1:
        return ["torchrun", "--standalone", "--nnodes=1", per_node, *rest]
    if not rendezvous:
        raise InvalidArgument(f"a {nodes}-node job needs the rendezvous host (pod 0)")
    return ["torchrun", f"--nnodes={nodes}", per_node, f"--node_rank={node_rank}", "--rdzv_backend=static",
            f"--master_addr={rendezvous}", f"--master_port={RENDEZVOUS_PORT}", "--max_restarts=0", *rest]


def build_job_manifest(spec: TrainingJobSpec) -> dict[str, Any]:
    """The batch/v1 Job body for ``spec``, as the JSON the API server accepts (camelCase keys)."""
    _validate(spec)
    labels = {
        "app.kubernetes.io/name": "distillery-trainer-job",
        "app.kubernetes.io/component": "training-job",
        "app.kubernetes.io/part-of": "distillery",
        "app.kubernetes.io/managed-by": "distillery",
        **spec.labels,
        JOB_NAME_LABEL: spec.name,
    }
    env = [{"name": k, "value": str(v)} for k, v in sorted(spec.env.items())]
    # Defaults the caller did not set: the job's device follows from its GPUs.
    if "DISTILLERY_DEVICE" not in spec.env:
        env.append({"name": "DISTILLERY_DEVICE", "value": "cuda" if spec.gpus > 0 else "cpu"})
    if spec.nodes > 1:
        env.append({"name": NODE_RANK_ENV, "valueFrom": {"fieldRef": {"fieldPath": _COMPLETION_INDEX}}})

    requests: dict[str, str] = {"cpu": str(spec.cpu), "memory": str(spec.memory)}
    # No CPU limit: CFS throttling slows tokenization and data loading without protecting anyone;
    # the memory limit is what keeps a runaway job from taking the node down.
    limits: dict[str, str] = {"memory": str(spec.memory)}
    if spec.gpus > 0:
        # Extended resources cannot be overcommitted: the request defaults to the limit.
        limits[GPU_RESOURCE] = str(spec.gpus)

    tolerations = spec.tolerations
    if tolerations is None:
        tolerations = (
            [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}] if spec.gpus > 0 else []
        )

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": torchrun_command(spec.command, spec.gpus, spec.nodes, rendezvous_host(spec.name, spec.namespace)),
        "env": env,
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "store", "mountPath": STORE_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    if spec.config_map:
        container["envFrom"] = [{"configMapRef": {"name": spec.config_map, "optional": True}}]

    pod_spec: dict[str, Any] = {
        # Never: a failed pod stays for its logs, and the Job controller (backoffLimit) retries.
        "restartPolicy": "Never",
        "serviceAccountName": spec.service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "cache", "emptyDir": {}},
            {"name": "state", "emptyDir": {}},
            {"name": "store", "persistentVolumeClaim": {"claimName": spec.store_pvc}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm_size}},
        ],
    }
    if spec.nodes > 1:
        # <name>-<i>.<name>: the headless Service (build_rendezvous_service) gives each pod a DNS name.
        pod_spec["subdomain"] = spec.name
        container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]

    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
        "completions": spec.nodes,
        "parallelism": spec.nodes,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if spec.nodes > 1:
        # Indexed: pod i gets completion index i (its node rank) and the hostname <name>-<i>; the
        # Job succeeds when every index has.
        job_spec["completionMode"] = "Indexed"
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": job_spec,
    }


def build_rendezvous_service(spec: TrainingJobSpec, job_uid: str) -> dict[str, Any]:
    """The headless Service that names the pods of a multi-node Job (``<name>-<i>.<name>``),
    owned by the Job so that it goes when the Job goes (deleted, or its TTL after finishing).
    ``publishNotReadyAddresses``: the names must resolve while the pods start, before any
    readiness is known."""
    _validate(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": {"app.kubernetes.io/part-of": "distillery", JOB_NAME_LABEL: spec.name},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": spec.name, "uid": job_uid,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {JOB_NAME_LABEL: spec.name},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
        },
    }


def parse_node_selector(text: str) -> dict[str, str]:
    """``"a=b,c=d"`` (DISTILLERY_TRAINER_JOB_NODE_SELECTOR) to ``{"a": "b", "c": "d"}``."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"node selector {text!r}: expected key=value[,key=value...], got {item!r}")
        result[key.strip()] = value.strip()
    return result


def default_namespace() -> str:
    """DISTILLERY_K8S_NAMESPACE (set by the Deployments), else the pod's own namespace, else distillery."""
    if envs.K8S_NAMESPACE.is_set():
        return envs.K8S_NAMESPACE.get()
    try:
        return _SA_NAMESPACE_FILE.read_text().strip() or "distillery"
    except OSError:
        return "distillery"


def _job_state(job: Any) -> tuple[JobPhase, str] | None:
    """Terminal state from the Job's conditions, or None while it is not finished."""
    status = job.status
    for cond in status.conditions if status and status.conditions else []:
        if cond.status != "True":
            continue
        # SuccessCriteriaMet / FailureTarget (1.31+) come before Complete / Failed; treat them
        # the same so a caller stops waiting as soon as the outcome is decided.
        if cond.type in ("Complete", "SuccessCriteriaMet"):
            return JobPhase.SUCCEEDED, cond.message or "job completed"
        if cond.type in ("Failed", "FailureTarget"):
            reason = f"{cond.reason}: " if cond.reason else ""
            return JobPhase.FAILED, f"{reason}{cond.message or 'job failed'}"
    return None


def _pending_reason(pod: Any) -> str:
    """Why a pod is not running yet, in the words Kubernetes uses (Unschedulable, ImagePullBackOff)."""
    status = pod.status
    for cs in (status.container_statuses or []) if status else []:
        waiting = cs.state.waiting if cs.state else None
        if waiting and waiting.reason:
            return f"pod {pod.metadata.name}: {waiting.reason}" + (
                f": {waiting.message}" if waiting.message else ""
            )
    for cond in (status.conditions or []) if status else []:
        if cond.type == "PodScheduled" and cond.status != "True":
            return f"pod {pod.metadata.name}: {cond.reason or 'not scheduled'}: {cond.message or ''}".rstrip(
                ": "
            )
    return f"pod {pod.metadata.name}: {status.phase if status else 'Pending'}"


class KubernetesJobLauncher:
    """Create, follow and delete training Jobs in one namespace.

    ``api_client`` is a configured ``kubernetes.client.ApiClient``; without one the launcher uses
    the in-cluster service account when it runs in a pod, else ~/.kube/config.
    """

    def __init__(
        self,
        namespace: str | None = None,
        api_client: ApiClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            from kubernetes import client
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise FailedPrecondition(
                "DISTILLERY_TRAINER_MODE=k8s-job needs the 'kubernetes' Python package in this service's environment"
            ) from exc
        self.namespace = namespace or default_namespace()
        self._api_client = api_client if api_client is not None else _load_api_client()
        self._batch = client.BatchV1Api(self._api_client)
        self._core = client.CoreV1Api(self._api_client)
        self._sleep = sleep
        self._clock = clock

    # -- operations -------------------------------------------------------------------------

    def create(self, spec: TrainingJobSpec) -> str:
        """Submit the Job; returns its name. AlreadyExists if a Job of that name exists."""
        if spec.namespace != self.namespace:
            raise InvalidArgument(
                f"job {spec.name}: namespace {spec.namespace!r} differs from the launcher's {self.namespace!r}"
            )
        body = build_job_manifest(spec)
        try:
            created = self._call(
                f"create job {spec.name}", self._batch.create_namespaced_job, self.namespace, body
            )
        except AlreadyExists:
            if spec.nodes > 1:  # a restarted trainer: the Service may be what the first try did not get to
                existing = self._call(f"read job {spec.name}", self._batch.read_namespaced_job, spec.name,
                                      self.namespace)
                self._create_service(spec, str(existing.metadata.uid))
            raise
        if spec.nodes > 1:
            try:
                self._create_service(spec, str(created.metadata.uid))
            except DistilleryError:
                # Without the Service the pods cannot find pod 0: do not leave a Job that can only hang.
                self.delete(spec.name)
                raise
        return str(created.metadata.name)

    def status(self, name: str) -> JobStatus:
        job = self._call(f"read job {name}", self._batch.read_namespaced_job_status, name, self.namespace)
        st = job.status
        counts = {
            "active": (st.active or 0) if st else 0,
            "succeeded": (st.succeeded or 0) if st else 0,
            "failed": (st.failed or 0) if st else 0,
        }
        terminal = _job_state(job)
        if terminal is not None:
            return JobStatus(terminal[0], terminal[1], **counts)
        if counts["active"] == 0 and counts["failed"] == 0:
            # Nothing has been started: no pod yet (or no Job controller running at all).
            return JobStatus(JobPhase.PENDING, f"job {name}: waiting for a pod to be created", **counts)
        pods = self._pods(name)
        running = [p for p in pods if p.status and p.status.phase == "Running"]
        if running:
            retry = f" (retry {counts['failed']} of {job.spec.backoff_limit})" if counts["failed"] else ""
            return JobStatus(
                JobPhase.RUNNING, f"job {name}: pod {running[0].metadata.name} running{retry}", **counts
            )
        pending = [p for p in pods if p.status is None or p.status.phase == "Pending"]
        if pending:
            return JobStatus(JobPhase.PENDING, _pending_reason(pending[0]), **counts)
        # Pods have ended but the Job controller has not written its verdict yet.
        return JobStatus(
            JobPhase.RUNNING, f"job {name}: pod finished, waiting for the job's final state", **counts
        )

    def wait(self, name: str, timeout: float = 24 * 3600.0, poll: float = 10.0) -> JobStatus:
        """Poll until the Job succeeds or fails, or ``timeout`` seconds pass.

        Returns the last status; on timeout it is not ``done`` and the Job keeps running (delete it
        to stop it). Polling, not a watch: a watch silently ends on API server restarts and its
        resourceVersion handling would add code for a loop that runs every few seconds anyway.
        """
        deadline = self._clock() + timeout
        while True:
            current = self.status(name)
            if current.done or self._clock() >= deadline:
                return current
            self._sleep(max(0.0, min(poll, deadline - self._clock())))

    def delete(self, name: str) -> None:
        """Delete the Job; its pods are garbage-collected in the background."""
        from kubernetes import client

        self._call(
            f"delete job {name}",
            self._batch.delete_namespaced_job,
            name,
            self.namespace,
            body=client.V1DeleteOptions(propagation_policy="Background"),
        )

    def logs(self, name: str, tail_lines: int | None = None) -> str:
        """Log of the Job's newest pod (with torchrun, every rank's output is interleaved there)."""
        pods = self._pods(name)
        if not pods:
            self._call(
                f"read job {name}", self._batch.read_namespaced_job, name, self.namespace
            )  # NotFound if gone
            raise NotFound(f"job {name} has no pods yet, so there are no logs")
        newest = max(pods, key=lambda p: p.metadata.creation_timestamp or _EPOCH)
        if not (newest.spec and newest.spec.node_name):
            # Logs are served by the node's kubelet; an unscheduled pod has none (API servers
            # differ: some answer 400, some an empty 200), so say so plainly.
            raise FailedPrecondition(
                f"job {name}: no logs yet: pod {newest.metadata.name} is not scheduled to a node"
            )
        kwargs: dict[str, Any] = {"container": CONTAINER_NAME}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        try:
            text = self._call(
                f"read logs of pod {newest.metadata.name}",
                self._core.read_namespaced_pod_log,
                newest.metadata.name,
                self.namespace,
                **kwargs,
            )
        except InvalidArgument as exc:
            # HTTP 400 here means "container not started yet" / "pod not scheduled", not bad input.
            raise FailedPrecondition(f"job {name}: no logs yet: {exc}") from None
        return str(text) if text is not None else ""

    # -- helpers ----------------------------------------------------------------------------

    def _create_service(self, spec: TrainingJobSpec, job_uid: str) -> None:
        try:
            self._call(f"create service {spec.name}", self._core.create_namespaced_service, self.namespace,
                       build_rendezvous_service(spec, job_uid))
        except AlreadyExists:
            pass

    def _pods(self, name: str) -> list[Any]:
        result = self._call(
            f"list pods of job {name}",
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=f"{JOB_NAME_LABEL}={name}",
        )
        return list(result.items or [])

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API and turn its failures into typed errors that name what was attempted."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise _api_error(what, self.namespace, exc) from None
        except (HTTPError, OSError) as exc:
            # Connection refused, DNS failure, TLS handshake, timeout: the API server is unreachable.
            # urllib3 wraps the cause in MaxRetryError; its `reason` is the readable part.
            cause = getattr(exc, "reason", None) or exc
            host = getattr(self._api_client.configuration, "host", "?")
            raise Unavailable(f"{what}: Kubernetes API server {host} unreachable: {cause}") from None


def _api_error(what: str, namespace: str, exc: Any) -> DistilleryError:
    status = int(exc.status or 0)
    detail = _api_message(exc)
    if status == 404:
        return NotFound(f"{what}: not found in namespace {namespace} ({detail})")
    if status == 409:
        return AlreadyExists(f"{what}: already exists in namespace {namespace} ({detail})")
    if status in (401, 403):
        # The service's own credentials are wrong, not the caller's: a deployment problem.
        return FailedPrecondition(
            f"{what}: the Kubernetes API refused this service's credentials (HTTP {status}: {detail}); "
            "check the distillery-job-launcher ServiceAccount, Role and RoleBinding (k8s/base/rbac.yaml)"
        )
    if status in (400, 422):
        return InvalidArgument(f"{what}: the Kubernetes API rejected the request ({detail})")
    if status == 429 or status >= 500 or status == 0:
        return Unavailable(f"{what}: Kubernetes API unavailable (HTTP {status}: {detail})")
    return FailedPrecondition(f"{what}: Kubernetes API error HTTP {status}: {detail}")


def _api_message(exc: Any) -> str:
    """The API's own human message from a Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, Mapping) and body.get("message"):
            return str(body["message"])
    except (TypeError, ValueError):
        pass
    return str(exc.reason or "no detail")


def _load_api_client() -> ApiClient:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if envs.KUBERNETES_SERVICE_HOST.is_set():
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except (ConfigException, OSError) as exc:
        raise FailedPrecondition(
            "no Kubernetes credentials: not running in a pod with a service account token and no usable "
            f"kubeconfig ({exc}); DISTILLERY_TRAINER_MODE=k8s-job needs one of the two"
        ) from None
    return client.ApiClient()
