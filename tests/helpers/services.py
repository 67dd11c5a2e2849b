"""Run a Distillery service as a real subprocess (``python -m services.<name>``) for
integration and crash tests: start it on a free port, wait until it is healthy, kill it (also
with SIGKILL, to simulate a crash), start it again on the same home.

    handle = start_service_process("generator", env_python, home, port=free_port(), extra_env={...})
    channel = handle.channel()
    handle.kill(signal.SIGKILL); handle = handle.restart()
    handle.stop()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vllm_python() -> Path:
    """The interpreter of the vLLM environment (the generator's): DISTILLERY_VLLM_PYTHON or
    <repo>/.venvs/vllm/bin/python."""
    return Path(os.environ.get("DISTILLERY_VLLM_PYTHON") or REPO / ".venvs" / "vllm" / "bin" / "python")


@dataclass
class ServiceProcess:
    service: str
    env_python: Path
    home: Path
    port: int
    extra_env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    label: str = ""  # names the log when two replicas of one service share a home

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DISTILLERY_HOME": str(self.home),
            "DISTILLERY_PORT": str(self.port),
            "DISTILLERY_METRICS_PORT": "-1",
            "DISTILLERY_HOST": "127.0.0.1",
            "PYTHONPATH": str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
        })
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 120.0) -> ServiceProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = self.home / f"{self.label or self.service}.{self.starts}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(self.env_python), "-m", f"services.{self.service}"], cwd=str(REPO),
                                        env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # own group: kill() reaches its workers
        log.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        from services.common.client import health_status, open_channel

        deadline = time.time() + timeout
        channel = open_channel(self.address, security=self.security)
        try:
            while time.time() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"{self.service} exited with {self.process.returncode} while starting:\n"
                                       + self.log_tail())
                if health_status(channel, timeout=1.0) == "SERVING":
                    return
                time.sleep(0.3)
        finally:
            channel.close()
        raise TimeoutError(f"{self.service} not healthy after {timeout:.0f}s:\n" + self.log_tail())

    @property
    def security(self) -> Any:
        """Token and TLS as this process's own variables set them (ClientSecurity.from_env)."""
        from services.common.config import ClientSecurity

        return ClientSecurity.from_env(self.extra_env)

    def channel(self) -> Any:
        from services.common.client import open_channel

        return open_channel(self.address, security=self.security)

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-chars:].decode("utf-8", errors="replace")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        """Send ``sig`` to the service's whole process group (engine workers too) and wait."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit in time."""
        self.kill(signal.SIGTERM, timeout)
        if self.process is not None and self.process.poll() is None:
            self.kill(signal.SIGKILL)

    def restart(self, timeout: float = 120.0) -> ServiceProcess:
        self.stop()
        return self.start(timeout)


def start_service_process(service: str, env_python: Path | str | None, home: Path, port: int | None = None,
                          extra_env: dict[str, str] | None = None, timeout: float = 120.0,
                          label: str = "") -> ServiceProcess:
    """Start ``python -m services.<service>`` with ``env_python`` (default: this interpreter)."""
    handle = ServiceProcess(service, Path(env_python or sys.executable), Path(home), port or free_port(),
                            dict(extra_env or {}), label=label)
    return handle.start(timeout)
