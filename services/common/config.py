"""Service configuration: one dataclass, read from environment variables (the Kubernetes
ConfigMap sets the same names), so every service is configured the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from services.common.errors import InvalidArgument

# Default gRPC ports; metrics listen on port + 1000.
DEFAULT_PORTS: dict[str, int] = {
    "pipeline": 50050,
    "generator": 50051,
    "validator": 50052,
    "trainer": 50053,
    "evaluator": 50054,
    "serving": 50055,
}
SERVICES: tuple[str, ...] = tuple(DEFAULT_PORTS)
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def default_home() -> Path:
    """Where state lives when nothing is configured: ./.distillery in the working directory."""
    return Path(os.environ.get("DISTILLERY_HOME", Path.cwd() / ".distillery")).resolve()


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"environment variable {name}={raw!r} is not an integer") from None


@dataclass
class ServiceConfig:
    """Everything a service process needs to start. Build it with ``from_env``."""

    service: str
    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int = 0  # 0: grpc port + 1000; -1: no metrics endpoint
    home: Path = field(default_factory=default_home)
    store_url: str = ""
    db_url: str = ""
    auth_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_workers: int = 16
    # Addresses of the other services (host:port), for services that call others.
    peers: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    # Where catalog models are materialized (GGUF → safetensors), shared by all services.
    model_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.service not in DEFAULT_PORTS:
            raise InvalidArgument(f"unknown service {self.service!r}; known: {', '.join(SERVICES)}")
        if not self.port:
            self.port = DEFAULT_PORTS[self.service]
        if self.metrics_port == 0:
            self.metrics_port = self.port + 1000
        if self.model_cache is None:
            self.model_cache = self.home / "models"
        if not self.store_url:
            self.store_url = (self.home / "store").as_uri()
        if not self.db_url:
            self.db_url = f"sqlite:///{self.home / (self.service + '.db')}"
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidArgument("TLS needs both DISTILLERY_TLS_CERT and DISTILLERY_TLS_KEY")
        for name in SERVICES:
            self.peers.setdefault(name, f"127.0.0.1:{DEFAULT_PORTS[name]}")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_env(cls, service: str, env: dict[str, str] | None = None) -> ServiceConfig:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("DISTILLERY_HOME") or default_home()).resolve()
        peers = {
            name: env[f"DISTILLERY_{name.upper()}_ADDR"]
            for name in SERVICES
            if env.get(f"DISTILLERY_{name.upper()}_ADDR")
        }
        cert, key = env.get("DISTILLERY_TLS_CERT"), env.get("DISTILLERY_TLS_KEY")
        return cls(
            service=service,
            host=env.get("DISTILLERY_HOST", "127.0.0.1"),
            port=_int(env, "DISTILLERY_PORT", 0),
            metrics_port=_int(env, "DISTILLERY_METRICS_PORT", 0),
            home=home,
            store_url=env.get("DISTILLERY_STORE_URL", ""),
            db_url=env.get("DISTILLERY_DB_URL", ""),
            auth_token=env.get("DISTILLERY_AUTH_TOKEN") or None,
            tls_cert=Path(cert) if cert else None,
            tls_key=Path(key) if key else None,
            max_message_bytes=_int(env, "DISTILLERY_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES),
            max_workers=_int(env, "DISTILLERY_MAX_WORKERS", 16),
            peers=peers,
            device=env.get("DISTILLERY_DEVICE", "auto"),
            model_cache=Path(env["DISTILLERY_MODEL_CACHE"]).resolve() if env.get("DISTILLERY_MODEL_CACHE") else None,
        )
