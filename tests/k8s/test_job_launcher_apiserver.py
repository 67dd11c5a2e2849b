"""KubernetesJobLauncher against a real kube-apiserver + etcd on loopback (opt-in: `make test-k8s`).

Needs DISTILLERY_KUBE_APISERVER_BIN (a kube-apiserver binary; scripts/build-kube-apiserver.sh
builds one from Debian's source package) and etcd (Debian's etcd-server: /usr/bin/etcd, or
DISTILLERY_ETCD_BIN). Skips cleanly without them.

What is real: the API server's validation, defaulting, admission, RBAC authorization and storage.
What is absent: controller-manager, scheduler and kubelet, so Jobs never get pods by themselves.
The test therefore plays the controllers' part where it needs to (writes a pod and the Job's
status through the status subresource, as the Job controller would) and checks that the launcher
reads those states correctly.

The launcher authenticates as the `distillery-job-launcher` ServiceAccount's user name (a static
token mapped to system:serviceaccount:distillery:distillery-job-launcher) and the Role and
RoleBinding are the ones from k8s/base/rbac.yaml, so this also proves that RBAC is sufficient.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.trainer.k8s_jobs import JOB_NAME_LABEL, JobPhase, KubernetesJobLauncher, TrainingJobSpec

pytestmark = pytest.mark.k8s

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "distillery"
SA_USER = f"system:serviceaccount:{NAMESPACE}:distillery-job-launcher"
STARTUP_TIMEOUT_S = 120.0


def _binaries() -> tuple[str, str]:
    apiserver = os.environ.get("DISTILLERY_KUBE_APISERVER_BIN", "")
    if not apiserver:
        pytest.skip("DISTILLERY_KUBE_APISERVER_BIN is not set (scripts/build-kube-apiserver.sh builds one)")
    if not os.access(apiserver, os.X_OK):
        pytest.skip(f"DISTILLERY_KUBE_APISERVER_BIN={apiserver} is not an executable file")
    etcd = os.environ.get("DISTILLERY_ETCD_BIN") or shutil.which("etcd") or "/usr/bin/etcd"
    if not os.access(etcd, os.X_OK):
        pytest.skip("etcd not found (apt-get install etcd-server, or set DISTILLERY_ETCD_BIN)")
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make the service-account signing key")
    return apiserver, etcd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _minor_version(apiserver: str) -> int:
    out = subprocess.run(
        [apiserver, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    m = re.search(r"v1\.(\d+)", out)
    if not m:
        pytest.skip(f"cannot read the kube-apiserver version from {out!r}")
    return int(m.group(1))


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, token: str | None = None) -> None:
    """Poll `url` until it answers 200, failing early (with the log) if the process dies."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # readiness poll only; the client under test verifies TLS
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    pytest.fail(f"{url} not ready after {STARTUP_TIMEOUT_S:.0f}s ({last}):\n{log.read_text()[-4000:]}")


@dataclass
class Cluster:
    host: str
    ca_file: Path
    admin_token: str
    launcher_token: str
    nobody_token: str
    minor: int

    def client(self, token: str) -> Any:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.host
        cfg.ssl_ca_cert = str(self.ca_file)
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        cfg.retries = 0
        return client.ApiClient(cfg)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    apiserver, etcd = _binaries()
    pytest.importorskip("kubernetes")
    minor = _minor_version(apiserver)
    work = tmp_path_factory.mktemp("kube")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # etcd: one member, loopback only, data in the temp dir.
        client_port, peer_port = _free_port(), _free_port()
        etcd_log = work / "etcd.log"
        procs.append(
            subprocess.Popen(
                [
                    etcd,
                    "--name=default",
                    f"--data-dir={work / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{client_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                ],
                stdout=etcd_log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        _wait_http(f"http://127.0.0.1:{client_port}/health", procs[-1], etcd_log)

        # Static tokens: an admin (system:masters), the launcher's ServiceAccount user (its rights
        # come only from the Role in k8s/base/rbac.yaml), and a user with no rights at all.
        admin, launcher, nobody = (os.urandom(16).hex() for _ in range(3))
        tokens = work / "tokens.csv"
        tokens.write_text(
            f'{admin},admin,uid-admin,"system:masters"\n'
            f'{launcher},{SA_USER},uid-launcher,"system:serviceaccounts,system:serviceaccounts:{NAMESPACE}"\n'
            f"{nobody},nobody,uid-nobody\n"
        )
        sa_key = work / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)

        port = _free_port()
        certs = work / "certs"
        args = [
            apiserver,
            f"--etcd-servers=http://127.0.0.1:{client_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={certs}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            # Required flag; the range is only configuration here, no traffic goes there.
            "--service-cluster-ip-range=10.96.0.0/24",
        ]
        if minor < 24:
            args.append("--insecure-port=0")  # the flag is gone in 1.24+
        if minor <= 22:
            # ttlSecondsAfterFinished is dropped unless the (then alpha/beta) gate is on.
            args.append("--feature-gates=TTLAfterFinished=true")
        api_log = work / "kube-apiserver.log"
        procs.append(subprocess.Popen(args, stdout=api_log.open("wb"), stderr=subprocess.STDOUT))
        host = f"https://127.0.0.1:{port}"
        _wait_http(f"{host}/readyz", procs[-1], api_log, token=admin)

        # The self-signed serving certificate the API server wrote; the client verifies against it.
        ca_file = certs / "apiserver.crt"
        yield Cluster(host, ca_file, admin, launcher, nobody, minor)
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    """Namespace and RBAC, created from the repository's own manifests."""
    yaml = pytest.importorskip("yaml")
    from kubernetes import client

    api = cluster.client(cluster.admin_token)
    base = REPO_ROOT / "k8s" / "base"
    ns = yaml.safe_load((base / "namespace.yaml").read_text())
    client.CoreV1Api(api).create_namespace(ns)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    for doc in yaml.safe_load_all((base / "rbac.yaml").read_text()):
        doc["metadata"]["namespace"] = NAMESPACE
        kind = doc["kind"]
        if kind == "ServiceAccount":
            core.create_namespaced_service_account(NAMESPACE, doc)
        elif kind == "Role":
            rbac.create_namespaced_role(NAMESPACE, doc)
        elif kind == "RoleBinding":
            rbac.create_namespaced_role_binding(NAMESPACE, doc)
    return NAMESPACE


def _spec(name: str, gpus: int = 2) -> TrainingJobSpec:
    return TrainingJobSpec(
        name=name,
        namespace=NAMESPACE,
        image="distillery/trainer:0.1.0-cuda",
        command=[
            "python",
            "-m",
            "services.trainer.run_job",
            "--config",
            "/var/lib/distillery/store/runs/x.json",
        ],
        env={"DISTILLERY_RUN": name},
        gpus=gpus,
        cpu="4",
        memory="16Gi",
        node_selector={"nvidia.com/gpu.present": "true"},
    )


def _launcher(cluster: Cluster, token: str | None = None, **kwargs: Any) -> KubernetesJobLauncher:
    return KubernetesJobLauncher(NAMESPACE, cluster.client(token or cluster.launcher_token), **kwargs)


def test_create_read_back_and_delete(cluster: Cluster, namespace: str) -> None:
    from kubernetes import client

    launcher = _launcher(cluster)
    assert launcher.create(_spec("train-a")) == "train-a"

    # Read it back as the admin: what the API server stored, after its defaulting.
    job = client.BatchV1Api(cluster.client(cluster.admin_token)).read_namespaced_job("train-a", namespace)
    assert job.spec.backoff_limit == 2
    assert job.spec.ttl_seconds_after_finished == 3600
    pod = job.spec.template.spec
    c = pod.containers[0]
    assert c.command[:4] == ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    assert c.resources.limits["nvidia.com/gpu"] == "2"
    store = next(v for v in pod.volumes if v.name == "store")
    assert store.persistent_volume_claim.claim_name == "distillery-store"
    assert pod.security_context.run_as_user == 10001 and c.security_context.read_only_root_filesystem is True
    assert pod.restart_policy == "Never"

    # No controller-manager runs, so no pod will ever appear: PENDING, with no logs to read.
    status = launcher.status("train-a")
    assert status.state is JobPhase.PENDING and not status.done
    with pytest.raises(NotFound, match="no pods yet"):
        launcher.logs("train-a")

    with pytest.raises(AlreadyExists):
        launcher.create(_spec("train-a"))

    launcher.delete("train-a")
    with pytest.raises(NotFound):
        launcher.status("train-a")
    with pytest.raises(NotFound):
        launcher.delete("train-a")
    with pytest.raises(NotFound):
        launcher.logs("train-a")


def test_wait_times_out_on_a_job_that_never_starts(cluster: Cluster, namespace: str) -> None:
    launcher = _launcher(cluster)
    launcher.create(_spec("train-wait"))
    try:
        started = time.monotonic()
        result = launcher.wait("train-wait", timeout=1.5, poll=0.5)
        assert result.state is JobPhase.PENDING and not result.done
        assert time.monotonic() - started < 10
    finally:
        launcher.delete("train-wait")


def test_status_follows_pod_and_job_state(cluster: Cluster, namespace: str) -> None:
    """Act as scheduler/kubelet/Job controller by writing status, and read it through the launcher."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    admin = cluster.client(cluster.admin_token)
    batch, core = client.BatchV1Api(admin), client.CoreV1Api(admin)
    launcher = _launcher(cluster)
    launcher.create(_spec("train-b", gpus=1))
    try:
        job = batch.read_namespaced_job("train-b", namespace)
        now = datetime.now(timezone.utc)
        # The Job controller would create this pod from the template; do it by hand.
        template = job.spec.template
        pod_body = client.V1Pod(
            metadata=client.V1ObjectMeta(name="train-b-x1", labels=template.metadata.labels),
            spec=template.spec,
        )
        core.create_namespaced_pod(namespace, pod_body)
        job.status = client.V1JobStatus(active=1, start_time=now)
        try:
            batch.replace_namespaced_job_status("train-b", namespace, job)
        except ApiException as exc:  # newer API servers validate Job status transitions strictly
            pytest.skip(f"this kube-apiserver refuses hand-written Job status: {exc.status} {exc.reason}")

        # Unscheduled pod: PENDING with the scheduler's reason.
        pod = core.read_namespaced_pod("train-b-x1", namespace)
        pod.status = client.V1PodStatus(
            phase="Pending",
            conditions=[
                client.V1PodCondition(
                    type="PodScheduled",
                    status="False",
                    reason="Unschedulable",
                    message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                )
            ],
        )
        core.replace_namespaced_pod_status("train-b-x1", namespace, pod)
        status = launcher.status("train-b")
        assert status.state is JobPhase.PENDING
        assert "Unschedulable" in status.message and "nvidia.com/gpu" in status.message

        # Running pod: RUNNING.
        pod = core.read_namespaced_pod("train-b-x1", namespace)
        pod.status = client.V1PodStatus(phase="Running", start_time=now)
        core.replace_namespaced_pod_status("train-b-x1", namespace, pod)
        status = launcher.status("train-b")
        assert status.state is JobPhase.RUNNING and status.active == 1
        # A pod that was never bound to a node has no kubelet to serve logs: a precondition.
        with pytest.raises(FailedPrecondition, match="no logs yet"):
            launcher.logs("train-b")

        # The Job controller's verdict: SUCCEEDED, and wait() returns at once.
        job = batch.read_namespaced_job("train-b", namespace)
        job.status = client.V1JobStatus(
            active=0,
            succeeded=1,
            start_time=now,
            completion_time=datetime.now(timezone.utc),
            conditions=[
                client.V1JobCondition(type="SuccessCriteriaMet", status="True", reason="CompletionsReached"),
                client.V1JobCondition(type="Complete", status="True", reason="CompletionsReached"),
            ]
            if cluster.minor >= 31
            else [client.V1JobCondition(type="Complete", status="True")],
        )
        batch.replace_namespaced_job_status("train-b", namespace, job)
        final = launcher.wait("train-b", timeout=5, poll=0.2)
        assert final.state is JobPhase.SUCCEEDED and final.done and final.succeeded == 1
    finally:
        launcher.delete("train-b")
        try:
            core.delete_namespaced_pod("train-b-x1", namespace)
        except ApiException:
            pass


def test_failed_job_reports_the_reason(cluster: Cluster, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    batch = client.BatchV1Api(cluster.client(cluster.admin_token))
    launcher = _launcher(cluster)
    launcher.create(_spec("train-c", gpus=0))
    try:
        job = batch.read_namespaced_job("train-c", namespace)
        now = datetime.now(timezone.utc)
        reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        job.status = client.V1JobStatus(
            failed=3,
            start_time=now,
            conditions=[
                client.V1JobCondition(type="FailureTarget", status="True", reason=reason, message=message),
                client.V1JobCondition(type="Failed", status="True", reason=reason, message=message),
            ]
            if cluster.minor >= 31
            else [client.V1JobCondition(type="Failed", status="True", reason=reason, message=message)],
        )
        try:
            batch.replace_namespaced_job_status("train-c", namespace, job)
        except ApiException as exc:
            pytest.skip(f"this kube-apiserver refuses hand-written Job status: {exc.status} {exc.reason}")
        status = launcher.status("train-c")
        assert status.state is JobPhase.FAILED and status.failed == 3
        assert status.message == f"{reason}: {message}"
    finally:
        launcher.delete("train-c")


def test_without_rbac_the_error_points_at_the_role(cluster: Cluster, namespace: str) -> None:
    stranger = _launcher(cluster, token=cluster.nobody_token)
    with pytest.raises(FailedPrecondition, match="rbac.yaml"):
        stranger.create(_spec("train-denied"))
    with pytest.raises(FailedPrecondition, match="HTTP 403"):
        stranger.status("train-denied")


def test_pods_found_by_instance_label(cluster: Cluster, namespace: str) -> None:
    """The label the launcher lists pods by is on the Job's pod template as stored by the server."""
    from kubernetes import client

    launcher = _launcher(cluster)
    launcher.create(_spec("train-d", gpus=0))
    try:
        job = client.BatchV1Api(cluster.client(cluster.admin_token)).read_namespaced_job("train-d", namespace)
        assert job.spec.template.metadata.labels[JOB_NAME_LABEL] == "train-d"
    finally:
        launcher.delete("train-d")


def test_multi_node_job_gets_its_headless_service_owned_by_the_job(cluster: Cluster, namespace: str) -> None:
    """DISTILLERY_TRAINER_JOB_NODES=2: the launcher's own RBAC creates the Job and the Service that
    names its pods (<name>-<i>.<name>) for torchrun's rendezvous; the Service is owned by the Job
    (the garbage collector deletes it with the Job), and a second create (a restarted trainer)
    is AlreadyExists without a second Service."""
    from dataclasses import replace

    from kubernetes import client

    launcher = _launcher(cluster)
    spec = replace(_spec("train-nodes", gpus=4), nodes=2)
    launcher.create(spec)
    try:
        admin = cluster.client(cluster.admin_token)
        job = client.BatchV1Api(admin).read_namespaced_job("train-nodes", namespace)
        pod = job.spec.template.spec
        assert pod.subdomain == "train-nodes" and (job.spec.completions, job.spec.parallelism) == (2, 2)
        if cluster.minor >= 22:  # Indexed Jobs are beta from 1.22 on; 1.20 drops the field it does not know
            assert job.spec.completion_mode == "Indexed"
        command = pod.containers[0].command
        assert command[:4] == ["torchrun", "--nnodes=2", "--nproc_per_node=4", "--node_rank=$(TORCHRUN_NODE_RANK)"]
        assert "--master_addr=train-nodes-0.train-nodes.distillery.svc" in command
        rank_env = next(e for e in pod.containers[0].env if e.name == "TORCHRUN_NODE_RANK")
        assert rank_env.value_from.field_ref.field_path == (
            "metadata.annotations['batch.kubernetes.io/job-completion-index']")
        service = client.CoreV1Api(admin).read_namespaced_service("train-nodes", namespace)
        assert service.spec.cluster_ip == "None" and service.spec.publish_not_ready_addresses is True
        assert service.spec.selector == {JOB_NAME_LABEL: "train-nodes"}
        (owner,) = service.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("Job", "train-nodes", job.metadata.uid)
        with pytest.raises(AlreadyExists):
            launcher.create(spec)
        services = client.CoreV1Api(admin).list_namespaced_service(namespace).items
        assert [s.metadata.name for s in services].count("train-nodes") == 1
    finally:
        launcher.delete("train-nodes")


def _complete(batch: Any, name: str, minor: int) -> None:
    """Write the Job controller's verdict SUCCEEDED on Job ``name``."""
    from kubernetes import client

    now = datetime.now(timezone.utc)
    job = batch.read_namespaced_job(name, NAMESPACE)
    job.status = client.V1JobStatus(
        active=0, succeeded=1, start_time=now, completion_time=now,
        conditions=[client.V1JobCondition(type="SuccessCriteriaMet", status="True", reason="CompletionsReached"),
                    client.V1JobCondition(type="Complete", status="True", reason="CompletionsReached")]
        if minor >= 31 else [client.V1JobCondition(type="Complete", status="True")])
    batch.replace_namespaced_job_status(name, NAMESPACE, job)


def test_the_trainer_in_k8s_job_mode_runs_follows_and_cancels_training_jobs(
        cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """services/trainer/job_mode.py through a real JobRunner against the real API server: a training
    operation becomes a Job with the GPU request and torchrun; its state reaches the operation; the
    result the run writes on the store volume is the operation's result; a trainer that restarts
    follows the same Job; cancelling the operation deletes the Job."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from services.common.artifacts import ArtifactStore
    from services.common.jobs import JobRunner
    from services.common.operations import open_operation_store
    from services.trainer.job_mode import JobModeSettings, job_name, run_as_job

    batch = client.BatchV1Api(cluster.client(cluster.admin_token))
    store = ArtifactStore((tmp_path / "store").as_uri())
    settings = JobModeSettings(image="distillery/trainer:0.1.0-cuda", gpus=2, namespace=NAMESPACE, cpu="8",
                               memory="40Gi", node_selector={"nvidia.com/gpu.present": "true"}, poll_seconds=0.2)
    launcher = _launcher(cluster)
    runner = JobRunner("trainer", open_operation_store(f"sqlite:///{tmp_path / 'ops.db'}"), store, tmp_path)
    runner.register("training", lambda op: run_as_job(op, op.request, launcher, settings, store))
    request = {"output_prefix": "jobs/j1/train", "request_id": "train-1", "config": {"max_steps": 3}}
    record = runner.submit("training", request, "train-1")
    name = job_name(record.short_id)

    def read_job() -> Any:
        deadline = time.time() + 30
        while True:
            try:
                return batch.read_namespaced_job(name, NAMESPACE)
            except ApiException as exc:
                if exc.status != 404 or time.time() > deadline:
                    raise
                time.sleep(0.1)

    job = read_job()
    container = job.spec.template.spec.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "2" and container.resources.requests["cpu"] == "8"
    assert container.command[:4] == ["torchrun", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    command = " ".join(container.command)
    assert "-m services.trainer.run_job --request /var/lib/distillery/store/jobs/j1/train/job-request.json" in command
    assert f"--out /var/lib/distillery/store/training-jobs/{record.short_id}" in command and "--store-only" in command
    assert json.loads(store.read_bytes("jobs/j1/train/job-request.json")) == request
    deadline = time.time() + 10
    while runner.ops.get(record.name).metadata.get("stage") != "job pending" and time.time() < deadline:
        time.sleep(0.1)
    assert runner.ops.get(record.name).metadata.get("stage") == "job pending"

    # The pod's run_job finishes: result.json on the store volume, then the Job controller's verdict.
    result = {"steps": 3, "final_train_loss": 0.5, "device": "cuda x2", "merged": {"uri": "file:///m"}}
    out = Path(store.full_path(f"training-jobs/{record.short_id}/result.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    _complete(batch, name, cluster.minor)
    done = runner.wait(record.name, timeout=30)
    assert done.state == "SUCCEEDED" and done.result == result
    launcher.delete(name)

    # Cancel: the operation's Job is deleted; a restarted trainer would have followed the same Job.
    second = runner.submit("training", {**request, "request_id": "train-2"}, "train-2")
    second_job = job_name(second.short_id)
    assert _exists(batch, second_job)
    with pytest.raises(AlreadyExists):  # what a restarted trainer meets, and follows instead of re-creating
        launcher.create(_job_spec_of(settings, second_job, second.short_id))
    runner.cancel(second.name)
    cancelled = runner.wait(second.name, timeout=30)
    assert cancelled.state == "CANCELLED"
    with pytest.raises(NotFound):
        launcher.status(second_job)
    runner.shutdown(wait=True)


def _exists(batch: Any, name: str, timeout: float = 30.0) -> bool:
    from kubernetes.client.exceptions import ApiException

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            batch.read_namespaced_job(name, NAMESPACE)
            return True
        except ApiException as exc:
            if exc.status != 404:
                raise
            time.sleep(0.1)
    return False


def _job_spec_of(settings: Any, name: str, operation_id: str) -> TrainingJobSpec:
    from services.trainer.job_mode import job_spec

    return job_spec(settings, name, "/var/lib/distillery/store/x.json",
                    f"/var/lib/distillery/store/training-jobs/{operation_id}")
