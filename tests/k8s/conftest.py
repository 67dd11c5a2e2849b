"""Fixtures for the Kubernetes tests (helpers live in kustomize_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.k8s.kustomize_helpers import K8S_DIR, OVERLAYS, find_kubectl, kustomize


@pytest.fixture(scope="session")
def kubectl() -> str:
    path, reason = find_kubectl()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def render(kubectl: str) -> Callable[[str], list[dict[str, Any]]]:
    """``render("gpu")`` -> the objects of k8s/overlays/gpu, built once per session."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def _render(name: str) -> list[dict[str, Any]]:
        if name not in cache:
            cache[name] = kustomize(kubectl, K8S_DIR / OVERLAYS[name])
        return cache[name]

    return _render
