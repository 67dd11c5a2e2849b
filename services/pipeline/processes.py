"""`distillery up` / `down`: every service as a local process, each in its own environment,
logs in one folder, pid files so `down` (or a second `up`) finds them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from services.common import envs
from services.common.client import health_status, open_channel
from services.common.config import SERVICES, ClientSecurity
from services.common.errors import FailedPrecondition, Unavailable
from services.pipeline.local_security import SECURE_FILE, ensure_local_security

REPO = Path(__file__).resolve().parents[2]
# The generator runs in the vLLM environment; every other service in the core environment.
SERVICE_ENV = {name: "core" for name in SERVICES} | {"generator": "vllm"}
START_ORDER = ("generator", "validator", "trainer", "evaluator", "serving", "pipeline")


@dataclass
class ServiceProcess:
    name: str
    pid: int | None
    address: str
    log: Path
    status: str


def interpreter(service: str) -> Path:
    env_name = SERVICE_ENV[service]
    override = envs.PYTHON[env_name].get()
    if override:
        return override
    candidate = REPO / ".venvs" / env_name / "bin" / "python"
    if candidate.exists():
        return candidate
    if env_name == "core":
        return Path(sys.executable)
    raise FailedPrecondition(f"the {env_name} environment is missing ({candidate}); run `make setup`")


class LocalCluster:
    """The six services as local processes on one home. ``secure=True`` (``distillery up
    --secure``) starts them with mutual TLS and a bearer token (services.pipeline.local_security);
    a home that was started secure once stays secure."""

    def __init__(self, home: Path, base_env: dict[str, str] | None = None, secure: bool = False) -> None:
        self.home = home
        self.run_dir = home / "run"
        self.log_dir = home / "logs"
        self.base_env = envs.snapshot() if base_env is None else dict(base_env)
        if secure or (home / "tls" / SECURE_FILE).is_file():
            self.base_env.update(ensure_local_security(home))
        self.security = ClientSecurity.from_env(self.base_env)

    def env_for(self, service: str) -> dict[str, str]:
        env = dict(self.base_env)
        env.update({
            "DISTILLERY_HOME": str(self.home),
            "DISTILLERY_PORT": str(envs.SERVICE_PORT[service].get(env)),
            "DISTILLERY_MODEL_CACHE": str(envs.MODEL_CACHE.get(env) or REPO / ".cache" / "models"),
            "PYTHONUNBUFFERED": "1",
        })
        env.pop("DISTILLERY_METRICS_PORT", None)
        return env

    def address(self, service: str) -> str:
        return envs.SERVICE_ADDR[service].get(self.base_env)

    def _pid(self, service: str) -> int | None:
        path = self.run_dir / f"{service}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        try:
            os.kill(pid, 0)
        except OSError:
            path.unlink(missing_ok=True)
            return None
        return pid

    def status(self) -> list[ServiceProcess]:
        result = []
        for service in START_ORDER:
            address = self.address(service)
            result.append(ServiceProcess(service, self._pid(service), address, self.log_dir / f"{service}.log",
                                         health_status(open_channel(address, security=self.security), timeout=1.0)))
        return result

    def up(self, services: tuple[str, ...] = START_ORDER, timeout: float = 300.0, on_event=print) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = []
        for service in services:
            if self._pid(service):
                on_event(f"{service}: already running (pid {self._pid(service)})")
                continue
            log = open(self.log_dir / f"{service}.log", "ab")
            process = subprocess.Popen([str(interpreter(service)), "-m", f"services.{service}"], cwd=str(REPO),
                                       env=self.env_for(service), stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            (self.run_dir / f"{service}.pid").write_text(str(process.pid))
            started.append((service, process))
            on_event(f"{service}: starting (pid {process.pid}, log {self.log_dir / (service + '.log')})")
        deadline = time.time() + timeout
        for service, process in started:
            channel = open_channel(self.address(service), security=self.security)
            while health_status(channel, timeout=1.0) != "SERVING":
                if process.poll() is not None:
                    tail = (self.log_dir / f"{service}.log").read_text(errors="replace").splitlines()[-15:]
                    raise Unavailable(f"{service} exited with code {process.returncode} during start-up; last log "
                                      f"lines:\n" + "\n".join(tail))
                if time.time() > deadline:
                    raise Unavailable(f"{service} did not become healthy within {timeout:.0f} s; see "
                                      f"{self.log_dir / (service + '.log')}")
                time.sleep(0.3)
            on_event(f"{service}: SERVING on {self.address(service)}")

    def down(self, grace: float = 20.0, on_event=print) -> None:
        for service in reversed(START_ORDER):
            pid = self._pid(service)
            if pid is None:
                continue
            os.killpg(pid, signal.SIGTERM)
            deadline = time.time() + grace
            while time.time() < deadline and self._pid(service):
                time.sleep(0.2)
            if self._pid(service):
                os.killpg(pid, signal.SIGKILL)
            (self.run_dir / f"{service}.pid").unlink(missing_ok=True)
            on_event(f"{service}: stopped")
