"""Fixtures shared by every test package. Keep it small: one fixture per shared resource."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Where catalog models are materialized: ``$DISTILLERY_MODEL_CACHE`` or ``<repo>/.cache/models``.

    Outside tmp_path on purpose: converting the bundled GGUF models takes minutes, so it happens
    once per machine, not once per test session.
    """
    path = Path(os.environ.get("DISTILLERY_MODEL_CACHE") or REPO / ".cache" / "models").absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def materialized(model_cache: Path) -> Callable[[str], Path]:
    """``materialized(name)``: the checkpoint directory of a catalog model (converted on first use)."""
    from services.common.catalog import resolve_model

    def resolve(name: str) -> Path:
        return resolve_model(name, model_cache)

    return resolve


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (tests/helpers/postgres.py); each test takes its
    own database from it with ``postgres_server.database_url(name)``."""
    from tests.helpers.postgres import start_postgres

    server = start_postgres()
    yield server
    server.stop()
