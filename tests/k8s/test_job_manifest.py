"""build_job_manifest and the launcher's error handling, without a cluster.

The manifest is also checked against the real Job schema (kubernetes-validate, strict), and the
launcher's "API server unreachable" path runs the real kubernetes client against a closed
loopback port.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.trainer.k8s_jobs import (
    JOB_NAME_LABEL,
    JobPhase,
    JobStatus,
    TrainingJobSpec,
    build_job_manifest,
    parse_node_selector,
    torchrun_command,
)

CMD = ["python", "-m", "services.trainer.run_job", "--config", "/var/lib/distillery/store/runs/r1/train.json"]


def spec(**overrides: Any) -> TrainingJobSpec:
    base: dict[str, Any] = {
        "name": "train-r1",
        "namespace": "distillery",
        "image": "registry.local/distillery/trainer:0.1.0-cuda",
        "command": list(CMD),
        "env": {"DISTILLERY_STORE_URL": "file:///var/lib/distillery/store", "B": "2"},
        "gpus": 1,
        "cpu": "4",
        "memory": "32Gi",
    }
    base.update(overrides)
    return TrainingJobSpec(**base)


def pod_spec(m: dict[str, Any]) -> dict[str, Any]:
    return m["spec"]["template"]["spec"]


def the_container(m: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod_spec(m)["containers"]
    return c


def test_job_basics() -> None:
    m = build_job_manifest(spec())
    assert m["apiVersion"] == "batch/v1" and m["kind"] == "Job"
    assert m["metadata"]["name"] == "train-r1" and m["metadata"]["namespace"] == "distillery"
    assert m["spec"]["backoffLimit"] == 2
    assert m["spec"]["ttlSecondsAfterFinished"] == 3600
    assert pod_spec(m)["restartPolicy"] == "Never"
    # Pods are found again through this label (logs, pending reasons).
    assert m["spec"]["template"]["metadata"]["labels"][JOB_NAME_LABEL] == "train-r1"
    assert "activeDeadlineSeconds" not in m["spec"]
    json.dumps(m)  # plain JSON: what the API server receives


def test_retry_and_cleanup_are_configurable() -> None:
    m = build_job_manifest(spec(backoff_limit=0, ttl_seconds_after_finished=60, active_deadline_seconds=7200))
    assert m["spec"]["backoffLimit"] == 0
    assert m["spec"]["ttlSecondsAfterFinished"] == 60
    assert m["spec"]["activeDeadlineSeconds"] == 7200


def test_resources_and_gpu_limits() -> None:
    c = the_container(build_job_manifest(spec(gpus=2)))
    assert c["resources"]["requests"] == {"cpu": "4", "memory": "32Gi"}
    assert c["resources"]["limits"] == {"memory": "32Gi", "nvidia.com/gpu": "2"}


def test_cpu_only_job_asks_for_no_gpu_and_tolerates_no_taint() -> None:
    m = build_job_manifest(spec(gpus=0))
    c = the_container(m)
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert "tolerations" not in pod_spec(m)
    assert c["command"] == CMD
    assert {"name": "DISTILLERY_DEVICE", "value": "cpu"} in c["env"]


def test_gpu_job_tolerates_the_gpu_taint_and_uses_cuda() -> None:
    m = build_job_manifest(spec(gpus=1, node_selector={"nvidia.com/gpu.present": "true"}))
    ps = pod_spec(m)
    assert ps["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert ps["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"name": "DISTILLERY_DEVICE", "value": "cuda"} in the_container(m)["env"]
    custom = [{"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"}]
    assert pod_spec(build_job_manifest(spec(tolerations=custom)))["tolerations"] == custom


def test_single_gpu_command_is_not_wrapped() -> None:
    assert the_container(build_job_manifest(spec(gpus=1)))["command"] == CMD


def test_multi_gpu_command_runs_under_torchrun_with_world_size_from_gpus() -> None:
    c = the_container(build_job_manifest(spec(gpus=4)))
    assert c["command"] == [
        "torchrun",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=4",
        "-m",
        "services.trainer.run_job",
        "--config",
        "/var/lib/distillery/store/runs/r1/train.json",
    ]


@pytest.mark.parametrize(
    ("command", "expected_tail"),
    [
        (["python3.11", "-m", "m", "--x"], ["-m", "m", "--x"]),
        (["/usr/local/bin/python", "train.py", "a"], ["train.py", "a"]),
        (["-m", "m"], ["-m", "m"]),
    ],
)
def test_torchrun_wrapping_forms(command: list[str], expected_tail: list[str]) -> None:
    assert torchrun_command(command, 8) == [
        "torchrun",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=8",
        *expected_tail,
    ]


def test_torchrun_command_is_left_alone_and_non_python_is_refused() -> None:
    given = ["torchrun", "--nproc_per_node=2", "-m", "m"]
    assert torchrun_command(given, 2) == given
    with pytest.raises(InvalidArgument, match="torchrun"):
        torchrun_command(["/bin/sh", "-c", "train"], 2)


def test_store_pvc_is_mounted_and_rootfs_is_read_only() -> None:
    m = build_job_manifest(spec(store_pvc="my-store"))
    volumes = {v["name"]: v for v in pod_spec(m)["volumes"]}
    mounts = {mt["mountPath"]: mt["name"] for mt in the_container(m)["volumeMounts"]}
    assert volumes[mounts["/var/lib/distillery/store"]]["persistentVolumeClaim"] == {"claimName": "my-store"}
    for writable in ("/tmp", "/var/lib/distillery", "/home/distillery/.cache", "/dev/shm"):
        assert "emptyDir" in volumes[mounts[writable]], writable
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"


def test_security_context() -> None:
    m = build_job_manifest(spec())
    ps = pod_spec(m)
    assert ps["securityContext"]["runAsNonRoot"] is True
    assert ps["securityContext"]["runAsUser"] == 10001
    assert ps["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ps["automountServiceAccountToken"] is False
    assert ps["serviceAccountName"] == "distillery"
    sc = the_container(m)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_environment_is_sorted_and_caller_wins() -> None:
    c = the_container(build_job_manifest(spec(env={"Z": "1", "A": "2", "DISTILLERY_DEVICE": "cpu"}, gpus=1)))
    assert [e["name"] for e in c["env"]] == ["A", "DISTILLERY_DEVICE", "Z"]
    assert {"name": "DISTILLERY_DEVICE", "value": "cpu"} in c["env"]
    assert c["envFrom"] == [{"configMapRef": {"name": "distillery-config", "optional": True}}]
    assert "envFrom" not in the_container(build_job_manifest(spec(config_map=None)))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"name": "Train_R1"}, "not a valid Kubernetes name"),
        ({"name": "x" * 64}, "at most 63"),
        ({"name": "-train"}, "not a valid"),
        ({"namespace": ""}, "namespace"),
        ({"image": ""}, "image is empty"),
        ({"command": []}, "command is empty"),
        ({"gpus": -1}, "gpus must be >= 0"),
        ({"backoff_limit": -1}, "backoff_limit"),
        ({"env": {"A=B": "x"}}, "environment variable"),
        ({"gpus": 2, "command": ["bash", "train.sh"]}, "torchrun"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        build_job_manifest(spec(**overrides))


@pytest.mark.parametrize("gpus", [0, 1, 4])
def test_manifest_passes_the_strict_job_schema(gpus: int) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    m = build_job_manifest(spec(gpus=gpus, node_selector={"a": "b"}, active_deadline_seconds=60))
    for version in sorted({"1.30.0", kv.latest_version()}):
        kv.validate(m, version, strict=True)


def test_parse_node_selector() -> None:
    assert parse_node_selector("nvidia.com/gpu.present=true, pool = a100") == {
        "nvidia.com/gpu.present": "true",
        "pool": "a100",
    }
    assert parse_node_selector("") == {}
    with pytest.raises(InvalidArgument, match="key=value"):
        parse_node_selector("justakey")


def test_job_status_done() -> None:
    assert JobStatus(JobPhase.SUCCEEDED).done and JobStatus(JobPhase.FAILED).done
    assert not JobStatus(JobPhase.PENDING).done and not JobStatus(JobPhase.RUNNING).done


# -- launcher, no cluster --------------------------------------------------------------------


def test_api_errors_become_typed_errors() -> None:
    pytest.importorskip("kubernetes")
    from kubernetes.client.exceptions import ApiException

    from services.trainer.k8s_jobs import _api_error

    def exc(status: int, message: str = "boom") -> ApiException:
        e = ApiException(status=status, reason="Reason")
        e.body = json.dumps({"kind": "Status", "message": message})
        return e

    assert isinstance(_api_error("read job x", "ns", exc(404, 'jobs.batch "x" not found')), NotFound)
    assert isinstance(_api_error("create job x", "ns", exc(409)), AlreadyExists)
    forbidden = _api_error("create job x", "ns", exc(403, "cannot create"))
    assert (
        isinstance(forbidden, FailedPrecondition)
        and "rbac.yaml" in str(forbidden)
        and "cannot create" in str(forbidden)
    )
    assert isinstance(_api_error("create job x", "ns", exc(422)), InvalidArgument)
    assert isinstance(_api_error("x", "ns", exc(503)), Unavailable)
    assert isinstance(_api_error("x", "ns", exc(429)), Unavailable)


def test_job_conditions_decide_terminal_state() -> None:
    pytest.importorskip("kubernetes")
    from kubernetes import client

    from services.trainer.k8s_jobs import _job_state

    def job(*conds: tuple[str, str, str | None, str | None]) -> client.V1Job:
        return client.V1Job(
            status=client.V1JobStatus(
                conditions=[
                    client.V1JobCondition(type=t, status=s, reason=r, message=m) for t, s, r, m in conds
                ]
            )
        )

    assert _job_state(client.V1Job(status=None)) is None
    assert _job_state(job(("Complete", "True", None, None))) == (JobPhase.SUCCEEDED, "job completed")
    state, message = _job_state(
        job(("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))
    )
    assert state is JobPhase.FAILED and message.startswith("BackoffLimitExceeded: ")
    assert _job_state(job(("Failed", "False", None, None))) is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_api_server_is_unavailable() -> None:
    pytest.importorskip("kubernetes")
    from kubernetes import client

    from services.trainer.k8s_jobs import KubernetesJobLauncher

    cfg = client.Configuration()
    cfg.host = f"https://127.0.0.1:{_closed_port()}"
    cfg.verify_ssl = False
    cfg.retries = 0  # fail at once: the first refused connection is the answer
    launcher = KubernetesJobLauncher("distillery", client.ApiClient(cfg))
    with pytest.raises(Unavailable, match="unreachable"):
        launcher.create(spec())
    with pytest.raises(Unavailable):
        launcher.status("train-r1")


def test_launcher_refuses_a_spec_for_another_namespace() -> None:
    pytest.importorskip("kubernetes")
    from kubernetes import client

    from services.trainer.k8s_jobs import KubernetesJobLauncher

    cfg = client.Configuration()
    cfg.host = f"https://127.0.0.1:{_closed_port()}"
    launcher = KubernetesJobLauncher("distillery", client.ApiClient(cfg))
    with pytest.raises(InvalidArgument, match="namespace"):
        launcher.create(spec(namespace="elsewhere"))


def test_wait_polls_until_done_or_timeout() -> None:
    """wait() with a fake clock and status sequence (status() itself is tested on a real API server)."""
    pytest.importorskip("kubernetes")
    from kubernetes import client

    from services.trainer.k8s_jobs import KubernetesJobLauncher

    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    cfg = client.Configuration()
    cfg.host = f"https://127.0.0.1:{_closed_port()}"
    launcher = KubernetesJobLauncher("distillery", client.ApiClient(cfg), sleep=sleep, clock=lambda: now[0])
    states = iter([JobPhase.PENDING, JobPhase.RUNNING, JobPhase.SUCCEEDED])
    launcher.status = lambda name: JobStatus(next(states))  # type: ignore[method-assign]
    assert launcher.wait("j", timeout=100, poll=5).state is JobPhase.SUCCEEDED
    assert slept == [5, 5]

    now[0], slept[:] = 0.0, []
    launcher.status = lambda name: JobStatus(JobPhase.RUNNING)  # type: ignore[method-assign]
    result = launcher.wait("j", timeout=12, poll=5)
    assert result.state is JobPhase.RUNNING and not result.done
    assert slept == [5, 5, 2]


# -- multi-node: an Indexed Job with torchrun's static rendezvous on pod 0 ----------------------


def test_multi_node_job_is_indexed_and_each_pod_runs_torchrun_with_its_completion_index() -> None:
    m = build_job_manifest(spec(gpus=4, nodes=3))
    job, pod, c = m["spec"], pod_spec(m), the_container(m)
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 3, 3)
    assert pod["subdomain"] == "train-r1"  # the headless Service's name: pods are train-r1-<i>.train-r1
    assert c["command"] == [
        "torchrun", "--nnodes=3", "--nproc_per_node=4", "--node_rank=$(TORCHRUN_NODE_RANK)",
        "--rdzv_backend=static", "--master_addr=train-r1-0.train-r1.distillery.svc", "--master_port=29500",
        "--max_restarts=0", "-m", "services.trainer.run_job", "--config", "/var/lib/distillery/store/runs/r1/train.json"]
    # Kubernetes expands $(TORCHRUN_NODE_RANK) from the container's env: the pod's completion index.
    assert {"name": "TORCHRUN_NODE_RANK", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}} in c["env"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"  # per pod, i.e. per node
    assert c["ports"] == [{"name": "rendezvous", "containerPort": 29500}]


def test_multi_node_cpu_job_runs_one_process_per_node() -> None:
    c = the_container(build_job_manifest(spec(gpus=0, nodes=2)))
    assert c["command"][:3] == ["torchrun", "--nnodes=2", "--nproc_per_node=1"]
    assert {"name": "DISTILLERY_DEVICE", "value": "cpu"} in c["env"]


def test_single_node_job_is_unchanged_by_the_multi_node_fields() -> None:
    m = build_job_manifest(spec(gpus=2))
    assert "completionMode" not in m["spec"] and m["spec"]["completions"] == 1
    assert "subdomain" not in pod_spec(m) and "ports" not in the_container(m)
    assert not any(e["name"] == "TORCHRUN_NODE_RANK" for e in the_container(m)["env"])


def test_rendezvous_service_is_headless_selects_the_jobs_pods_and_is_owned_by_the_job() -> None:
    from services.trainer.k8s_jobs import build_rendezvous_service

    s = build_rendezvous_service(spec(nodes=2), job_uid="1234-abcd")
    assert (s["kind"], s["metadata"]["name"], s["metadata"]["namespace"]) == ("Service", "train-r1", "distillery")
    assert s["spec"]["clusterIP"] == "None" and s["spec"]["publishNotReadyAddresses"] is True
    assert s["spec"]["selector"] == {JOB_NAME_LABEL: "train-r1"}
    assert build_job_manifest(spec(nodes=2))["spec"]["template"]["metadata"]["labels"][JOB_NAME_LABEL] == "train-r1"
    assert s["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "train-r1",
                                                 "uid": "1234-abcd", "blockOwnerDeletion": True}]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"nodes": 0}, "nodes must be >= 1"),
        ({"nodes": 2, "name": "a" * 62}, "a 2-node job needs a name of at most 61 characters"),
        ({"nodes": 2, "gpus": 0, "command": ["bash", "train.sh"]}, "on 2 nodes"),
    ],
)
def test_bad_multi_node_specs_are_refused(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        build_job_manifest(spec(**overrides))


@pytest.mark.parametrize("gpus", [0, 8])
def test_multi_node_manifests_pass_the_strict_schemas(gpus: int) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    from services.trainer.k8s_jobs import build_rendezvous_service

    for manifest in (build_job_manifest(spec(gpus=gpus, nodes=4)), build_rendezvous_service(spec(nodes=4), "u-1")):
        for version in sorted({"1.30.0", kv.latest_version()}):
            kv.validate(manifest, version, strict=True)


def test_job_mode_settings_read_the_node_count() -> None:
    from services.trainer.job_mode import JobModeSettings, job_spec

    settings = JobModeSettings(image="img", gpus=2, nodes=2, namespace="distillery")
    made = job_spec(settings, "distillery-train-abc", "/req.json", "/run")
    assert (made.nodes, made.gpus) == (2, 2)
    assert the_container(build_job_manifest(made))["command"][:4] == [
        "torchrun", "--nnodes=2", "--nproc_per_node=2", "--node_rank=$(TORCHRUN_NODE_RANK)"]
