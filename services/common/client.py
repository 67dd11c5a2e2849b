"""Client side of the platform: channels with auth/TLS/size limits, health waits, and an
operations helper (get / wait / watch / cancel, unpacking metadata and results)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from distillery.v1 import common_pb2
from distillery.v1 import operations_pb2_grpc as dist_ops_grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import DEFAULT_MAX_MESSAGE_BYTES, ClientSecurity

M = TypeVar("M", bound=Message)


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call (works on insecure channels too)."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or []) + [self.header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


@dataclass
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def open_channel(address: str, token: str | None = None, tls_ca: Path | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, *,
                 security: ClientSecurity | None = None) -> grpc.Channel:
    """A channel to one of the platform's servers. ``security`` (the usual way: the service's
    ``config.client_security`` or ``ClientSecurity.from_env()``) carries token and TLS; ``token``
    and ``tls_ca`` are the same for callers that hold them separately."""
    security = security or ClientSecurity(token=token, ca=Path(tls_ca) if tls_ca else None)
    token = security.token
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", max_message_bytes),
                                      ("grpc.max_send_message_length", max_message_bytes)]
    if security.tls:
        assert security.ca is not None
        credentials = grpc.ssl_channel_credentials(
            root_certificates=security.ca.read_bytes(),
            private_key=security.client_key.read_bytes() if security.client_key else None,
            certificate_chain=security.client_cert.read_bytes() if security.client_cert else None)
        if security.server_name:
            options.append(("grpc.ssl_target_name_override", security.server_name))
        channel = grpc.secure_channel(address, credentials, options)
    else:
        channel = grpc.insecure_channel(address, options)
    if token:
        channel = grpc.intercept_channel(channel, _TokenInterceptor(token))
    return channel


def health_status(channel: grpc.Channel, service: str = "", timeout: float = 2.0) -> str:
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                          timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as exc:
        return f"UNREACHABLE ({exc.code().name})"


def wait_healthy(channel: grpc.Channel, timeout: float = 60.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if health_status(channel, timeout=1.0) == "SERVING":
            return True
        time.sleep(0.2)
    return False


def operation_metadata(operation: operations_pb2.Operation) -> common_pb2.OperationMetadata:
    metadata = common_pb2.OperationMetadata()
    if operation.HasField("metadata"):
        operation.metadata.Unpack(metadata)
    return metadata


class OperationFailed(Exception):
    def __init__(self, operation: operations_pb2.Operation) -> None:
        self.operation = operation
        self.code = grpc.StatusCode.UNKNOWN
        for code in grpc.StatusCode:
            if code.value[0] == operation.error.code:
                self.code = code
        super().__init__(f"{operation.name}: {self.code.name}: {operation.error.message}")


# Answers that mean "try again", not "the operation failed".
_TRANSIENT = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE})


class OperationsClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self.ops = operations_pb2_grpc.OperationsStub(channel)
        self.progress = dist_ops_grpc.ProgressServiceStub(channel)

    def get(self, name: str, timeout: float = 10.0) -> operations_pb2.Operation:
        return self.ops.GetOperation(operations_pb2.GetOperationRequest(name=name), timeout=timeout)

    def cancel(self, name: str) -> None:
        self.ops.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=10.0)

    def list(self, page_size: int = 50) -> list[operations_pb2.Operation]:
        return list(self.ops.ListOperations(operations_pb2.ListOperationsRequest(page_size=page_size),
                                            timeout=10.0).operations)

    def wait(self, name: str, timeout: float = 3600.0, poll: float = 30.0, slack: float = 10.0) -> operations_pb2.Operation:
        """Wait for an operation with WaitOperation calls of ``poll`` seconds each (each may take
        ``slack`` seconds longer). A call that runs past that or finds the server restarting
        (DEADLINE_EXCEEDED, UNAVAILABLE) is tried again until ``timeout``: a slow or restarting
        server is not a failed operation."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            chunk = max(0.1, min(poll, left))
            try:
                operation = self.ops.WaitOperation(
                    operations_pb2.WaitOperationRequest(name=name, timeout=duration_pb2.Duration(
                        seconds=int(chunk), nanos=int((chunk % 1) * 1e9))),
                    timeout=chunk + slack)
            except grpc.RpcError as exc:
                if exc.code() not in _TRANSIENT or time.time() >= deadline:
                    raise
                time.sleep(min(1.0, max(0.0, deadline - time.time())))
                continue
            if operation.done or time.time() >= deadline:
                return operation

    def watch(self, name: str, interval: float = 0.5) -> Iterator[operations_pb2.Operation]:
        return self.progress.WatchOperation(common_pb2.WatchOperationRequest(name=name, interval_seconds=interval))

    @staticmethod
    def result(operation: operations_pb2.Operation, message_type: type[M]) -> M:
        """The unpacked response of a finished operation; raises OperationFailed on error."""
        if operation.HasField("error") and operation.error.code != 0:
            raise OperationFailed(operation)
        if not operation.done:
            raise OperationFailed(operations_pb2.Operation(name=operation.name, done=False))
        result = message_type()
        operation.response.Unpack(result)
        return result
