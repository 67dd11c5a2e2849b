"""The kustomize base and overlays build, pass strict schema validation, and say what we mean.

Schema validation uses kubernetes-validate's offline JSON schemas in strict mode (unknown fields
are errors), against the oldest Kubernetes we support (1.30: native gRPC probes are GA since 1.27,
the PDB's unhealthyPodEvictionPolicy exists since 1.27) and the newest schema it ships.
The remaining tests check meaning that a schema cannot: ports agree with the conventions, probes
hit the gRPC port, selectors match pods, NetworkPolicies allow exactly the intended traffic.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.common.envs import DEFAULT_PORTS
from tests.k8s.kustomize_helpers import K8S_DIR, OVERLAYS, kustomize

Render = Callable[[str], list[dict[str, Any]]]

MIN_K8S_VERSION = "1.30.0"
# The ports the code defaults to (services/common/envs.py): the images and manifests must agree.
SERVICES = DEFAULT_PORTS
WORKERS = ("generator", "validator", "trainer", "evaluator")
CONFIG_KEYS = {
    "DISTILLERY_HOST",
    "DISTILLERY_HOME",
    "DISTILLERY_STORE_URL",
    "DISTILLERY_MAX_MESSAGE_BYTES",
    "DISTILLERY_GENERATOR_ADDR",
    "DISTILLERY_VALIDATOR_ADDR",
    "DISTILLERY_TRAINER_ADDR",
    "DISTILLERY_EVALUATOR_ADDR",
    "DISTILLERY_SERVING_ADDR",
    "DISTILLERY_DEVICE",
    "DISTILLERY_VLLM_TENSOR_PARALLEL_SIZE",
    "DISTILLERY_TRAINER_MODE",
}


# -- helpers ---------------------------------------------------------------------------------


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{kind}/{name} not rendered")


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def container(deploy: dict[str, Any]) -> dict[str, Any]:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deploy["metadata"]["name"]
    return containers[0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "m": 1e-3}


def quantity(q: str | float) -> float:
    """Kubernetes resource quantity -> float (cores or bytes)."""
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    assert m, f"bad quantity {q!r}"
    return float(m.group(1)) * _SUFFIX.get(m.group(2), 1)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """matchLabels / matchExpressions (In, NotIn, Exists, DoesNotExist) semantics."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def ingress_allowed(
    policies: list[dict[str, Any]],
    dst_labels: dict[str, str],
    port: int,
    src_labels: dict[str, str],
    src_namespace: str,
    namespace: str = "distillery",
) -> bool:
    """Would NetworkPolicy let a pod (src) reach `dst_labels:port`? (The standard semantics:
    isolated once any Ingress policy selects the pod; then allowed if any rule of any selecting
    policy matches both the peer and the port.)"""
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], dst_labels)]
    if not selecting:
        return True
    ns_labels = {"kubernetes.io/metadata.name": src_namespace}
    for pol in selecting:
        for rule in pol["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
                ns_ok = selects(ns_sel, ns_labels) if ns_sel is not None else src_namespace == namespace
                pod_ok = selects(pod_sel, src_labels) if pod_sel is not None else True
                if ns_ok and pod_ok:
                    return True
    return False


def pod_labels(objs: list[dict[str, Any]], service: str) -> dict[str, str]:
    return find(objs, "Deployment", f"distillery-{service}")["spec"]["template"]["metadata"]["labels"]


# -- build and schema ------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_overlay_builds(render: Render, overlay: str) -> None:
    objs = render(overlay)
    kinds = {o["kind"] for o in objs}
    assert {
        "Namespace",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "NetworkPolicy",
    } <= kinds
    assert {
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    } <= kinds
    assert len(of_kind(objs, "Deployment")) == len(SERVICES)
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "distillery", (
                f"{obj['kind']}/{obj['metadata']['name']}"
            )


def _schema_versions() -> list[str]:
    kv = pytest.importorskip("kubernetes_validate")
    return sorted({MIN_K8S_VERSION, kv.latest_version()})


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_object_passes_strict_schema(render: Render, overlay: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    failures = []
    for version in _schema_versions():
        for obj in render(overlay):
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                failures.append(f"{version} {obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")
            except kv.SchemaNotFoundError as exc:
                failures.append(f"{version}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_strict_validation_rejects_an_unknown_field(render: Render) -> None:
    """Guards the test above: a typo'd field must fail, or 'passes strict' proves nothing."""
    kv = pytest.importorskip("kubernetes_validate")
    bad = find(render("base"), "Deployment", "distillery-generator")
    bad = {**bad, "spec": {**bad["spec"], "replica": 1}}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, MIN_K8S_VERSION, strict=True)


def test_example_secrets_pass_strict_schema() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    yaml = pytest.importorskip("yaml")
    docs = [
        d for d in yaml.safe_load_all((K8S_DIR / "base" / "distillery-auth.example.yaml").read_text()) if d
    ]
    assert {d["metadata"]["name"] for d in docs} == {"distillery-auth", "distillery-s3", "distillery-db"}
    for doc in docs:
        kv.validate(doc, MIN_K8S_VERSION, strict=True)


def test_no_secret_is_rendered(render: Render) -> None:
    # A rendered Secret would overwrite the operator's real token on every `kubectl apply -k`.
    for overlay in OVERLAYS:
        assert not of_kind(render(overlay), "Secret"), overlay


# -- services, ports, probes -----------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_services_ports_and_probes(render: Render, overlay: str) -> None:
    objs = render(overlay)
    for svc, grpc_port in SERVICES.items():
        deploy = find(objs, "Deployment", f"distillery-{svc}")
        c = container(deploy)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        expected = {"grpc": grpc_port, "metrics": grpc_port + 1000}
        if svc == "serving":
            expected["http"] = 8000
        if svc == "pipeline":
            expected["review"] = 8050  # the review page (DISTILLERY_REVIEW_PORT's default)
        assert ports == expected, svc
        env = env_of(c)
        assert env["DISTILLERY_PORT"] == str(grpc_port)
        assert env["DISTILLERY_METRICS_PORT"] == str(grpc_port + 1000)
        db = env["DISTILLERY_DB_URL"]  # a SQLite file on the volume, or the shared database's Secret
        assert (db.startswith("sqlite:////var/lib/distillery/") if isinstance(db, str)
                else db == {"secretKeyRef": {"name": "distillery-db", "key": "url"}}), svc
        assert env["DISTILLERY_AUTH_TOKEN"]["secretKeyRef"] == {
            "name": "distillery-auth",
            "key": "token",
            "optional": True,
        }
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == grpc_port, f"{svc} {probe}"
        if svc == "generator":
            assert c["startupProbe"]["grpc"]["port"] == grpc_port
            start = c["startupProbe"]
            assert start["periodSeconds"] * start["failureThreshold"] >= 120, (
                "vLLM start takes 20-50 s on CPU"
            )
        annotations = deploy["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(grpc_port + 1000)

        service = find(objs, "Service", f"distillery-{svc}")
        sports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        assert sports == expected, svc
        assert selects(
            {"matchLabels": service["spec"]["selector"]}, deploy["spec"]["template"]["metadata"]["labels"]
        )
        assert deploy["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_config_map_and_addresses(render: Render, overlay: str) -> None:
    objs = render(overlay)
    data = find(objs, "ConfigMap", "distillery-config")["data"]
    assert CONFIG_KEYS <= set(data), CONFIG_KEYS - set(data)
    assert data["DISTILLERY_HOST"] == "0.0.0.0"
    assert data["DISTILLERY_STORE_URL"] == "file:///var/lib/distillery/store"
    for svc in ("generator", "validator", "trainer", "evaluator", "serving"):
        assert data[f"DISTILLERY_{svc.upper()}_ADDR"] == f"distillery-{svc}:{SERVICES[svc]}"
    for deploy in of_kind(objs, "Deployment"):
        refs = [e["configMapRef"]["name"] for e in container(deploy)["envFrom"] if "configMapRef" in e]
        assert refs == ["distillery-config"]
        # Service links would add DISTILLERY_<SVC>_PORT=tcp://... next to our own variables.
        assert deploy["spec"]["template"]["spec"]["enableServiceLinks"] is False


# -- security and storage --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_pods_are_locked_down(render: Render, overlay: str) -> None:
    for deploy in of_kind(render(overlay), "Deployment"):
        name = deploy["metadata"]["name"]
        pod = deploy["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        c = container(deploy)
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"] == {"drop": ["ALL"]}, name
        assert sc["runAsNonRoot"] is True, name
        # Only the pod that launches Jobs (the trainer) carries an API token.
        launcher = name == "distillery-trainer"
        assert pod["serviceAccountName"] == ("distillery-job-launcher" if launcher else "distillery"), name
        assert pod["automountServiceAccountToken"] is launcher, name


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_writable_paths_and_store(render: Render, overlay: str) -> None:
    objs = render(overlay)
    pvc = find(objs, "PersistentVolumeClaim", "distillery-store")
    assert pvc["spec"]["accessModes"] == (["ReadWriteOnce"] if overlay == "cpu" else ["ReadWriteMany"])
    for deploy in of_kind(objs, "Deployment"):
        name = deploy["metadata"]["name"]
        volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container(deploy)["volumeMounts"]}
        assert volumes[mounts["/var/lib/distillery/store"]]["persistentVolumeClaim"] == {
            "claimName": "distillery-store"
        }, name
        for path in ("/tmp", "/home/distillery/.cache", "/var/lib/distillery"):
            assert "emptyDir" in volumes[mounts[path]], f"{name}: {path} must be a writable emptyDir"
        assert set(mounts.values()) <= set(volumes), name


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_resources_have_requests_within_limits(render: Render, overlay: str) -> None:
    for deploy in of_kind(render(overlay), "Deployment"):
        res = container(deploy)["resources"]
        for key in ("cpu", "memory"):
            req, lim = quantity(res["requests"][key]), quantity(res["limits"][key])
            assert 0 < req <= lim, f"{deploy['metadata']['name']} {key}: request {req} > limit {lim}"


# -- serving scale-out -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_serving_autoscaling_and_disruption_budget(render: Render, overlay: str) -> None:
    objs = render(overlay)
    deploy = find(objs, "Deployment", "distillery-serving")
    assert "replicas" not in deploy["spec"], "the HPA owns serving's replica count"
    hpa = find(objs, "HorizontalPodAutoscaler", "distillery-serving")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "distillery-serving",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = find(objs, "PodDisruptionBudget", "distillery-serving")
    assert selects(pdb["spec"]["selector"], deploy["spec"]["template"]["metadata"]["labels"])
    # A worker with its own SQLite operation store runs one pod at a time; on the shared
    # PostgreSQL store (gpu overlay) replicas hand jobs over by lease, so updates roll.
    for svc in WORKERS + ("pipeline",):
        d = find(objs, "Deployment", f"distillery-{svc}")
        shared = isinstance(env_of(container(d))["DISTILLERY_DB_URL"], dict)  # from the distillery-db Secret
        assert d["spec"]["strategy"]["type"] == ("RollingUpdate" if shared else "Recreate"), svc


def test_gpu_overlay_runs_worker_replicas_on_one_database(render: Render) -> None:
    objs = render("gpu")
    for svc in WORKERS + ("pipeline",):
        env = env_of(container(find(objs, "Deployment", f"distillery-{svc}")))
        assert env["DISTILLERY_DB_URL"] == {"secretKeyRef": {"name": "distillery-db", "key": "url"}}, svc
    for svc in ("generator", "validator", "evaluator"):
        deploy = find(objs, "Deployment", f"distillery-{svc}")
        assert deploy["spec"]["replicas"] >= 2, svc
        pdb = find(objs, "PodDisruptionBudget", f"distillery-{svc}")
        assert pdb["spec"]["maxUnavailable"] == 1
        assert selects(pdb["spec"]["selector"], deploy["spec"]["template"]["metadata"]["labels"]), svc
    # Serving keeps a SQLite file per pod; the base and the cpu overlay keep SQLite everywhere.
    assert env_of(container(find(objs, "Deployment", "distillery-serving")))["DISTILLERY_DB_URL"].startswith("sqlite:///")
    for overlay in ("base", "cpu"):
        for d in of_kind(render(overlay), "Deployment"):
            assert env_of(container(d))["DISTILLERY_DB_URL"].startswith("sqlite:///"), d["metadata"]["name"]
            assert d["spec"].get("replicas", 1) == 1 or d["metadata"]["name"] == "distillery-serving"


# -- network policies ------------------------------------------------------------------------


def test_network_policies_allow_exactly_the_intended_traffic(render: Render) -> None:
    objs = render("base")
    policies = of_kind(objs, "NetworkPolicy")
    deny = find(objs, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}

    pods = {svc: pod_labels(objs, svc) for svc in SERVICES}
    stranger = {"app.kubernetes.io/name": "something-else"}
    allowed_callers = {
        "generator": {"pipeline", "evaluator", "validator"},
        "validator": {"pipeline"},
        "trainer": {"pipeline"},
        "evaluator": {"pipeline"},
    }
    for worker, callers in allowed_callers.items():
        port = SERVICES[worker]
        for caller in SERVICES:
            got = ingress_allowed(policies, pods[worker], port, pods[caller], "distillery")
            assert got == (caller in callers), f"{caller} -> {worker}:{port} allowed={got}"
        assert not ingress_allowed(policies, pods[worker], port, stranger, "distillery")
        assert not ingress_allowed(policies, pods[worker], port, pods["pipeline"], "other-namespace")
    for port in (50055, 8000):
        assert ingress_allowed(policies, pods["serving"], port, stranger, "anywhere")
    assert ingress_allowed(policies, pods["pipeline"], 50050, stranger, "anywhere")

    for svc, port in SERVICES.items():
        metrics = port + 1000
        assert ingress_allowed(policies, pods[svc], metrics, {"app": "prometheus"}, "monitoring"), svc
        assert not ingress_allowed(policies, pods[svc], metrics, stranger, "default"), svc
        # Ports nobody should reach stay closed, even from the pipeline.
        assert not ingress_allowed(policies, pods[svc], 22, pods["pipeline"], "distillery"), svc


def test_pods_of_a_multi_node_training_job_reach_each_other_and_nobody_else_reaches_them(render: Render) -> None:
    """torchrun's rendezvous (29500) and the process group's own ports between the pods of an
    Indexed training Job, under the namespace's default-deny ingress."""
    from services.trainer.k8s_jobs import TrainingJobSpec, build_job_manifest

    policies = of_kind(render("base"), "NetworkPolicy")
    job = build_job_manifest(TrainingJobSpec(name="distillery-train-abc", namespace="distillery", image="img",
                                             command=["python", "-m", "m"], env={}, gpus=2, cpu="4",
                                             memory="16Gi", nodes=2))
    pod = job["spec"]["template"]["metadata"]["labels"]
    for port in (29500, 41234):  # the rendezvous, and a port gloo/NCCL chose
        assert ingress_allowed(policies, pod, port, pod, "distillery"), port
    for other in ({"app.kubernetes.io/name": "distillery-pipeline"}, {"app.kubernetes.io/name": "something-else"}):
        assert not ingress_allowed(policies, pod, 29500, other, "distillery"), other
    assert not ingress_allowed(policies, pod, 29500, pod, "other-namespace")


# -- RBAC ------------------------------------------------------------------------------------


def test_rbac_lets_launchers_manage_jobs_and_read_logs(render: Render) -> None:
    objs = render("base")
    role = find(objs, "Role", "distillery-job-launcher")
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    assert {"create", "get", "list", "watch", "delete"} <= grants[("batch", "jobs")]
    assert {"get", "list", "watch"} <= grants[("", "pods")]
    assert "get" in grants[("", "pods/log")]
    assert grants[("", "services")] == {"create"}  # a multi-node Job's headless Service; the Job owns it
    assert set(grants) == {("batch", "jobs"), ("batch", "jobs/status"), ("", "pods"), ("", "pods/log"),
                           ("", "services")}
    assert all("*" not in verbs for verbs in grants.values())
    binding = find(objs, "RoleBinding", "distillery-job-launcher")
    assert binding["roleRef"]["name"] == "distillery-job-launcher"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "distillery-job-launcher", "namespace": "distillery"}
    ]


# -- overlays --------------------------------------------------------------------------------


def test_cpu_overlay_fits_a_small_node(render: Render) -> None:
    objs = render("cpu")
    images = {d["metadata"]["name"]: container(d)["image"] for d in of_kind(objs, "Deployment")}
    assert images["distillery-generator"].endswith(":0.1.0-cpu")
    assert images["distillery-trainer"].endswith(":0.1.0-cpu")
    data = find(objs, "ConfigMap", "distillery-config")["data"]
    assert float(data["DISTILLERY_VLLM_KVCACHE_GIB"]) > 0
    assert data["DISTILLERY_DEVICE"] == "cpu"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in data
    total_cpu = sum(
        quantity(container(d)["resources"]["requests"]["cpu"]) for d in of_kind(objs, "Deployment")
    )
    assert total_cpu <= 2.0, f"cpu overlay requests {total_cpu} cores; it must fit a 2-4 core node"
    for d in of_kind(objs, "Deployment"):
        assert "nvidia.com/gpu" not in str(d), d["metadata"]["name"]


def test_gpu_overlay_puts_generator_on_gpus_and_trains_in_jobs(render: Render) -> None:
    objs = render("gpu")
    data = find(objs, "ConfigMap", "distillery-config")["data"]
    assert data["DISTILLERY_TRAINER_MODE"] == "k8s-job"
    gen = find(objs, "Deployment", "distillery-generator")
    pod = gen["spec"]["template"]["spec"]
    c = container(gen)
    assert c["image"].endswith(":0.1.0-cuda")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == data["DISTILLERY_VLLM_TENSOR_PARALLEL_SIZE"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"]
    trainer = find(objs, "Deployment", "distillery-trainer")
    assert container(trainer)["image"].endswith(":0.1.0-cuda")
    # The Jobs get the trainer's image, resolved by kustomize, not a hand-copied tag.
    assert data["DISTILLERY_TRAINER_JOB_IMAGE"] == container(trainer)["image"]
    assert "nvidia.com/gpu" not in container(trainer)["resources"]["limits"], (
        "k8s-job mode: the Jobs hold the GPUs"
    )
    for svc in ("pipeline", "validator", "evaluator", "serving"):
        assert "nvidia.com/gpu" not in str(find(objs, "Deployment", f"distillery-{svc}")), svc


def _overlay_on(
    tmp_path: Path, kubectl: str, body: str, files: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Render a throwaway overlay in tmp_path (relative paths: kustomize refuses absolute ones)."""
    rel = os.path.relpath(K8S_DIR, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(body.replace("{K8S}", rel))
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    return kustomize(kubectl, tmp_path)


def test_tensor_parallel_size_drives_generator_gpu_count(tmp_path: Path, kubectl: str) -> None:
    """Editing the one number in overlays/gpu/config.yaml moves the generator's GPU limit with it.

    (kustomize resolves `replacements` inside overlays/gpu, so an overlay *on top of* gpu that
    patches only the ConfigMap would not: docs/kubernetes.md says to edit or copy the gpu overlay.)
    """
    gpu = K8S_DIR / "overlays" / "gpu"
    copy = tmp_path / "gpu"
    copy.mkdir()
    for f in gpu.iterdir():
        copy.joinpath(f.name).write_text(f.read_text())
    kz = copy / "kustomization.yaml"
    kz.write_text(kz.read_text().replace("../../base", os.path.relpath(K8S_DIR / "base", copy))
                  .replace("../../components", os.path.relpath(K8S_DIR / "components", copy)))
    cfg = copy / "config.yaml"
    text = cfg.read_text()
    assert 'DISTILLERY_VLLM_TENSOR_PARALLEL_SIZE: "1"' in text
    cfg.write_text(
        text.replace('DISTILLERY_VLLM_TENSOR_PARALLEL_SIZE: "1"', 'DISTILLERY_VLLM_TENSOR_PARALLEL_SIZE: "4"')
    )
    objs = kustomize(kubectl, copy)
    gen = find(objs, "Deployment", "distillery-generator")
    assert container(gen)["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert find(objs, "ConfigMap", "distillery-config")["data"]["DISTILLERY_VLLM_TENSOR_PARALLEL_SIZE"] == "4"


def test_trainer_inprocess_gpu_component(tmp_path: Path, kubectl: str) -> None:
    objs = _overlay_on(
        tmp_path,
        kubectl,
        "resources: [{K8S}/overlays/gpu]\ncomponents: [{K8S}/components/trainer-inprocess-gpu]\n",
    )
    assert find(objs, "ConfigMap", "distillery-config")["data"]["DISTILLERY_TRAINER_MODE"] == "inprocess"
    trainer = find(objs, "Deployment", "distillery-trainer")
    assert container(trainer)["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t["key"] == "nvidia.com/gpu" for t in trainer["spec"]["template"]["spec"]["tolerations"])
    kv = pytest.importorskip("kubernetes_validate")
    kv.validate(trainer, MIN_K8S_VERSION, strict=True)
