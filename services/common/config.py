"""Service configuration: one dataclass, read from environment variables (the Kubernetes
ConfigMap sets the same names), so every service is configured the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from services.common.errors import InvalidArgument
from services.common.references import parse_roots

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


def _client_auth(env: dict[str, str]) -> bool:
    mode = (env.get("DISTILLERY_TLS_CLIENT_AUTH") or "none").lower()
    if mode not in ("none", "require"):
        raise InvalidArgument(f"DISTILLERY_TLS_CLIENT_AUTH={mode!r}: choose none or require")
    return mode == "require"


@dataclass(frozen=True)
class ClientSecurity:
    """How a client reaches the platform's servers: the bearer token and TLS. One object for every
    client (the pipeline's worker channels, the evaluator's and validator's generator clients, the
    CLI), so turning TLS on for the platform is one set of variables:

    - ``DISTILLERY_AUTH_TOKEN``: bearer token sent on every call;
    - ``DISTILLERY_TLS_CA``: PEM of the CA that signed the servers' certificates (defaults to the
      server's own ``DISTILLERY_TLS_CERT``, which is right for a self-signed certificate);
    - ``DISTILLERY_TLS_CLIENT_CERT`` / ``DISTILLERY_TLS_CLIENT_KEY``: a client certificate, for
      servers that require mutual TLS (``DISTILLERY_TLS_CLIENT_AUTH=require``);
    - ``DISTILLERY_TLS_SERVER_NAME``: the name to check the server certificate against when it is
      not the host being dialled (an IP address, a port-forward)."""

    token: str | None = None
    ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None

    @property
    def tls(self) -> bool:
        return self.ca is not None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ClientSecurity:
        env = dict(os.environ if env is None else env)
        ca = env.get("DISTILLERY_TLS_CA") or env.get("DISTILLERY_TLS_CERT")
        cert, key = env.get("DISTILLERY_TLS_CLIENT_CERT"), env.get("DISTILLERY_TLS_CLIENT_KEY")
        if bool(cert) != bool(key):
            raise InvalidArgument("mutual TLS needs both DISTILLERY_TLS_CLIENT_CERT and DISTILLERY_TLS_CLIENT_KEY")
        return cls(token=env.get("DISTILLERY_AUTH_TOKEN") or None, ca=Path(ca) if ca else None,
                   client_cert=Path(cert) if cert else None, client_key=Path(key) if key else None,
                   server_name=env.get("DISTILLERY_TLS_SERVER_NAME") or None)


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
    # Mutual TLS: the server requires a client certificate signed by client_security.ca.
    tls_require_client_cert: bool = False
    # How this service dials the others (token, CA, client certificate).
    client_security: ClientSecurity = field(default_factory=ClientSecurity)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_workers: int = 16
    # Addresses of the other services (host:port), for services that call others.
    peers: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    # Where catalog models are materialized (GGUF → safetensors), shared by all services.
    model_cache: Path | None = None
    # Local directories a request may name as a model/artifact path, besides the store and the
    # model cache (DISTILLERY_MODEL_ROOTS, os.pathsep-separated; default none).
    model_roots: tuple[Path, ...] = ()

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
        if self.tls_require_client_cert and (self.tls_cert is None or self.client_security.ca is None):
            raise InvalidArgument("DISTILLERY_TLS_CLIENT_AUTH=require needs DISTILLERY_TLS_CERT/KEY and "
                                  "DISTILLERY_TLS_CA (the CA that signs client certificates)")
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
            tls_require_client_cert=_client_auth(env),
            client_security=ClientSecurity.from_env(env),
            max_message_bytes=_int(env, "DISTILLERY_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES),
            max_workers=_int(env, "DISTILLERY_MAX_WORKERS", 16),
            peers=peers,
            device=env.get("DISTILLERY_DEVICE", "auto"),
            model_cache=Path(env["DISTILLERY_MODEL_CACHE"]).resolve() if env.get("DISTILLERY_MODEL_CACHE") else None,
            model_roots=parse_roots(env.get("DISTILLERY_MODEL_ROOTS", "")),
        )
