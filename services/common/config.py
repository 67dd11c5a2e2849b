"""Service configuration: one dataclass, read from environment variables (the Kubernetes
ConfigMap sets the same names), so every service is configured the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common import envs
from services.common.envs import DEFAULT_PORTS, SERVICES
from services.common.errors import InvalidArgument
from services.common.references import parse_roots

__all__ = ["DEFAULT_PORTS", "SERVICES", "ClientSecurity", "ServiceConfig", "default_home"]
DEFAULT_MAX_MESSAGE_BYTES: int = envs.MAX_MESSAGE_BYTES.default


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """Where state lives: DISTILLERY_HOME, else ./.distillery in the working directory."""
    return (envs.HOME.get(env) or Path.cwd() / ".distillery").resolve()


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
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSecurity:
        cert, key = envs.TLS_CLIENT_CERT.get(env), envs.TLS_CLIENT_KEY.get(env)
        if (cert is None) != (key is None):
            raise InvalidArgument("mutual TLS needs both DISTILLERY_TLS_CLIENT_CERT and DISTILLERY_TLS_CLIENT_KEY")
        return cls(token=envs.AUTH_TOKEN.get(env) or None, ca=envs.TLS_CA.get(env) or envs.TLS_CERT.get(env),
                   client_cert=cert, client_key=key, server_name=envs.TLS_SERVER_NAME.get(env) or None)


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
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServiceConfig:
        model_cache = envs.MODEL_CACHE.get(env)
        return cls(
            service=service,
            host=envs.HOST.get(env),
            port=envs.PORT.get(env),
            metrics_port=envs.METRICS_PORT.get(env),
            home=default_home(env),
            store_url=envs.STORE_URL.get(env),
            db_url=envs.DB_URL.get(env),
            auth_token=envs.AUTH_TOKEN.get(env) or None,
            tls_cert=envs.TLS_CERT.get(env),
            tls_key=envs.TLS_KEY.get(env),
            tls_require_client_cert=envs.TLS_CLIENT_AUTH.get(env) == "require",
            client_security=ClientSecurity.from_env(env),
            max_message_bytes=envs.MAX_MESSAGE_BYTES.get(env),
            max_workers=envs.MAX_WORKERS.get(env),
            peers={name: variable.get(env) for name, variable in envs.SERVICE_ADDR.items() if variable.is_set(env)},
            device=envs.DEVICE.get(env),
            model_cache=model_cache.resolve() if model_cache else None,
            model_roots=parse_roots(envs.MODEL_ROOTS.get(env)),
        )
