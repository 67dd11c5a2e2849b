"""Every environment variable is declared once in services/common/envs.py: nothing else in
services/ reads the environment, every DISTILLERY_* name the code, the manifests and the docs use
is declared, docs/configuration.md carries the generated table, and a bad value names its variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.common import envs
from services.common.config import ServiceConfig
from services.common.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bDISTILLERY_[A-Z0-9_]*[A-Z0-9]\b")
# Read by the test harness and the Makefile, never by a service.
HARNESS_ONLY = {"DISTILLERY_TEST_STUDENT_DIR", "DISTILLERY_TEST_TEACHER", "DISTILLERY_TEST_GENERATOR_ROWS",
                "DISTILLERY_SOAK_SECONDS", "DISTILLERY_ETCD_BIN", "DISTILLERY_KUBE_APISERVER_BIN",
                "DISTILLERY_KUBECTL", "DISTILLERY_DEPLOY_DIR", "DISTILLERY_RUN"}


def _files(*globs: str) -> list[Path]:
    return [path for pattern in globs for path in ROOT.glob(pattern)
            if "genproto" not in path.parts and path.is_file()]


def test_no_module_but_envs_reads_the_environment() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for path in _files("services/**/*.py") if path.name != "envs.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"os\.environ|os\.getenv|os\.putenv", line)]
    assert offenders == []


def test_every_name_the_platform_uses_is_declared() -> None:
    used: dict[str, str] = {}
    for path in _files("services/**/*.py", "k8s/**/*.yaml", "docs/*.md", "README.md", "Makefile"):
        for name in NAME.findall(path.read_text()):
            used.setdefault(name, str(path.relative_to(ROOT)))
    undeclared = {name: where for name, where in used.items()
                  if name not in envs.VARIABLES and name not in HARNESS_ONLY}
    assert undeclared == {}


def test_docs_carry_the_generated_table() -> None:
    assert envs.markdown_table() in (ROOT / "docs" / "configuration.md").read_text()


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(InvalidArgument, match=r"DISTILLERY_PORT='eighty' is not an integer"):
        ServiceConfig.from_env("trainer", {"DISTILLERY_PORT": "eighty"})
    with pytest.raises(InvalidArgument, match=r"DISTILLERY_TLS_CLIENT_AUTH='maybe' .*none or require"):
        ServiceConfig.from_env("trainer", {"DISTILLERY_TLS_CLIENT_AUTH": "maybe"})
    with pytest.raises(InvalidArgument, match="DISTILLERY_SERVING_BATCH_WAIT_MS"):
        envs.SERVING_BATCH_WAIT_MS.get({"DISTILLERY_SERVING_BATCH_WAIT_MS": "soon"})


def test_unset_and_empty_mean_the_default_and_values_are_typed(tmp_path: Path) -> None:
    assert envs.SERVING_MAX_QUEUE.get({}) == 256
    assert envs.SERVING_MAX_QUEUE.get({"DISTILLERY_SERVING_MAX_QUEUE": ""}) == 256
    assert envs.SERVING_MAX_QUEUE.get({"DISTILLERY_SERVING_MAX_QUEUE": "3"}) == 3
    assert envs.VLLM_EAGER.get({"DISTILLERY_VLLM_EAGER": "0"}) is False
    assert envs.DEBUG.get({"DISTILLERY_DEBUG": "true"}) is True
    assert envs.HOME.get({"DISTILLERY_HOME": str(tmp_path)}) == tmp_path
    config = ServiceConfig.from_env("serving", {"DISTILLERY_HOME": str(tmp_path),
                                                "DISTILLERY_GENERATOR_ADDR": "gen:1"})
    assert config.home == tmp_path.resolve() and config.port == envs.DEFAULT_PORTS["serving"]
    assert config.peers["generator"] == "gen:1" and config.peers["trainer"] == "127.0.0.1:50053"


def test_a_variable_is_declared_once() -> None:
    with pytest.raises(RuntimeError, match="declared twice"):
        envs._declare("DISTILLERY_HOME", None, "again")
