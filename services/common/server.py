"""One bootstrap for every gRPC server: health, reflection, Prometheus metrics, JSON logs,
message size limits, optional bearer-token auth and TLS, typed errors mapped to status codes,
and graceful shutdown on SIGTERM."""

from __future__ import annotations

import hmac
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from services.common.config import ServiceConfig
from services.common.errors import DistilleryError

log = logging.getLogger(__name__)

# Health checks must work without a token: Kubernetes probes and load balancers send none.
_UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/",)

STATUS_CODES: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}


@dataclass
class ServerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("distillery_grpc_requests", "gRPC requests handled", ["method", "code"],
                                registry=self.registry)
        self.latency = Histogram("distillery_grpc_request_seconds", "gRPC request latency", ["method"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.in_flight = Gauge("distillery_grpc_in_flight", "gRPC requests in progress", registry=self.registry)


def _abort_for(exc: BaseException, context: grpc.ServicerContext, method: str) -> None:
    if isinstance(exc, DistilleryError):
        context.abort(STATUS_CODES.get(exc.code, grpc.StatusCode.INTERNAL), exc.message)
    incident = uuid.uuid4().hex[:8]
    log.exception("unhandled error in %s (incident %s)", method, incident)
    context.abort(grpc.StatusCode.INTERNAL,
                  f"internal error in {method} (incident {incident}); the server log has the details")


class _EdgeInterceptor(grpc.ServerInterceptor):
    """Auth, metrics and error mapping around every handler."""

    def __init__(self, token: str | None, metrics: ServerMetrics) -> None:
        self.token = token
        self.metrics = metrics

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        needs_auth = self.token is not None and not method.startswith(_UNAUTHENTICATED_PREFIXES)
        if needs_auth:
            supplied = dict(details.invocation_metadata or ()).get("authorization", "")
            if not hmac.compare_digest(supplied.encode(), f"Bearer {self.token}".encode()):
                reason = "missing bearer token" if not supplied else "invalid bearer token"

                def deny(request: Any, context: grpc.ServicerContext) -> Any:
                    self.metrics.requests.labels(method, "UNAUTHENTICATED").inc()
                    context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                  f"{reason}: send 'authorization: Bearer <token>' metadata")

                if handler.request_streaming:
                    return grpc.stream_unary_rpc_method_handler(deny) if not handler.response_streaming \
                        else grpc.stream_stream_rpc_method_handler(deny)
                return grpc.unary_unary_rpc_method_handler(deny) if not handler.response_streaming \
                    else grpc.unary_stream_rpc_method_handler(deny)
        return self._wrap(handler, method)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        metrics = self.metrics

        def finished(code: str, start: float) -> None:
            metrics.in_flight.dec()
            metrics.requests.labels(method, code).inc()
            metrics.latency.labels(method).observe(time.perf_counter() - start)

        def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                start, code = time.perf_counter(), "OK"
                metrics.in_flight.inc()
                try:
                    return behavior(request, context)
                except BaseException as exc:
                    code = _code_name(exc, context)
                    if _is_abort(exc, context):
                        raise
                    _abort_for(exc, context, method)
                finally:
                    finished(code, start)
            return run

        def streaming(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Iterable[Any]:
                start, code = time.perf_counter(), "OK"
                metrics.in_flight.inc()
                try:
                    yield from behavior(request, context)
                except BaseException as exc:
                    code = _code_name(exc, context)
                    if _is_abort(exc, context) or isinstance(exc, GeneratorExit):
                        raise
                    _abort_for(exc, context, method)
                finally:
                    finished(code, start)
            return run

        kwargs = {"request_deserializer": handler.request_deserializer,
                  "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kwargs)


def _is_abort(exc: BaseException, context: grpc.ServicerContext) -> bool:
    # context.abort raises a bare Exception after setting the code; let it through untouched.
    code = getattr(context, "code", lambda: None)()
    return code is not None and code != grpc.StatusCode.OK


def _code_name(exc: BaseException, context: grpc.ServicerContext) -> str:
    if isinstance(exc, DistilleryError):
        return exc.code
    code = getattr(context, "code", lambda: None)()
    return code.name if code is not None else "INTERNAL"


@dataclass
class ServiceRegistration:
    """A servicer to mount: its full proto service name and the generated ``add_..._to_server``."""

    full_name: str
    add_to_server: Callable[[grpc.Server], None]


class DistilleryServer:
    """A started gRPC server with health, reflection and metrics."""

    def __init__(self, config: ServiceConfig, registrations: list[ServiceRegistration],
                 on_stop: Callable[[], None] | None = None) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        options = [
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.max_workers),
                                  interceptors=[_EdgeInterceptor(config.auth_token, self.metrics)],
                                  options=options)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        for registration in registrations:
            registration.add_to_server(self.server)
            names.append(registration.full_name)
        self.service_names = names
        reflection.enable_server_reflection(names, self.server)
        if config.tls_cert and config.tls_key:
            client_ca = config.client_security.ca if config.tls_require_client_cert else None
            creds = grpc.ssl_server_credentials([(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
                                                root_certificates=client_ca.read_bytes() if client_ca else None,
                                                require_client_auth=client_ca is not None)
            self.port = self.server.add_secure_port(config.address, creds)
        else:
            self.port = self.server.add_insecure_port(config.address)
        if self.port == 0:
            raise OSError(f"cannot bind {config.address}: port in use?")
        self._on_stop = on_stop
        self._stopped = threading.Event()
        self.metrics_server: Any = None

    def start(self) -> DistilleryServer:
        if self.config.metrics_port > 0:
            self.metrics_server, _ = start_http_server(self.config.metrics_port, addr=self.config.host,
                                                        registry=self.metrics.registry)
        self.server.start()
        for name in self.service_names + [""]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("%s listening on %s:%d (metrics :%d, auth %s, tls %s)", self.config.service, self.config.host,
                 self.port, self.config.metrics_port, "on" if self.config.auth_token else "off",
                 "on" if self.config.tls_cert else "off")
        return self

    def stop(self, grace: float = 10.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        if self._on_stop:
            self._on_stop()
        self.server.stop(grace).wait(grace + 1)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()

    def wait_for_termination(self) -> None:
        """Block until SIGTERM/SIGINT, then shut down gracefully."""
        def handle(signum: int, _frame: Any) -> None:
            log.info("signal %d: shutting down", signum)
            threading.Thread(target=self.stop, daemon=True).start()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        while not self._stopped.is_set():
            self._stopped.wait(1.0)
        self.server.wait_for_termination(timeout=15)
