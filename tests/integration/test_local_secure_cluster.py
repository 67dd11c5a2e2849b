"""`distillery up --secure`: the local cluster makes its CA, certificates and token once, starts
real service processes with mutual TLS and the token, and the CLI's client settings find them.
(The full six-service distillation under TLS is the kill -9 test; this is the `up` path.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import grpc
import pytest
from distillery.v1 import validator_pb2, validator_pb2_grpc

from services.common.client import health_status, open_channel
from services.common.config import ClientSecurity
from services.pipeline.local_security import client_env, ensure_local_security
from services.pipeline.processes import LocalCluster
from tests.helpers.services import free_port


def test_secure_files_are_made_once_with_private_keys(tmp_path: Path) -> None:
    first = ensure_local_security(tmp_path)
    assert ensure_local_security(tmp_path) == first  # the same CA and token on every `up`
    for key in ("server.key", "client.key", "client.env"):
        assert stat.S_IMODE((tmp_path / "tls" / key).stat().st_mode) == 0o600, key
    # The CLI picks the files up only when the user set no token or CA of their own.
    assert client_env(tmp_path, {})["DISTILLERY_AUTH_TOKEN"] == first["DISTILLERY_AUTH_TOKEN"]
    assert client_env(tmp_path, {"DISTILLERY_AUTH_TOKEN": "mine"}) == {"DISTILLERY_AUTH_TOKEN": "mine"}


def test_up_secure_starts_services_that_refuse_plaintext_and_tokenless_calls(tmp_path: Path) -> None:
    port = free_port()
    base = {**os.environ, "DISTILLERY_VALIDATOR_PORT": str(port), "DISTILLERY_VALIDATOR_ADDR": f"127.0.0.1:{port}"}
    cluster = LocalCluster(tmp_path, base_env=base, secure=True)
    try:
        cluster.up(services=("validator",), timeout=120, on_event=lambda _: None)
        address = cluster.address("validator")
        assert health_status(open_channel(address, security=cluster.security), timeout=5) == "SERVING"
        assert health_status(open_channel(address), timeout=5).startswith("UNREACHABLE")  # plaintext
        # What a later `distillery` command on this home dials with: the saved client settings.
        saved = ClientSecurity.from_env(client_env(tmp_path, {}))
        assert saved.tls and saved.client_cert is not None and saved.token == cluster.security.token
        stub = validator_pb2_grpc.ValidatorServiceStub(
            open_channel(address, security=ClientSecurity(ca=saved.ca, client_cert=saved.client_cert,
                                                          client_key=saved.client_key)))
        with pytest.raises(grpc.RpcError) as info:  # TLS with a certificate, but no token
            stub.StartValidation(validator_pb2.StartValidationRequest(), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A home started secure stays secure: a plain LocalCluster on it uses the same settings.
        assert LocalCluster(tmp_path, base_env=base).security == cluster.security
    finally:
        cluster.down(on_event=lambda _: None)


def test_the_pipeline_process_serves_its_review_page_with_the_platforms_tls_and_token(tmp_path: Path) -> None:
    """The review page lives in the real pipeline process (`distillery up`), HTTPS with the local
    CA's certificate, and wants the token like every gRPC call."""
    import json
    import ssl
    import urllib.error
    import urllib.request

    port, review = free_port(), free_port()
    base = {**os.environ, "DISTILLERY_PIPELINE_PORT": str(port), "DISTILLERY_PIPELINE_ADDR": f"127.0.0.1:{port}",
            "DISTILLERY_REVIEW_PORT": str(review)}
    cluster = LocalCluster(tmp_path, base_env=base, secure=True)
    try:
        cluster.up(services=("pipeline",), timeout=120, on_event=lambda _: None)
        context = ssl.create_default_context(cafile=str(cluster.security.ca))
        url = f"https://127.0.0.1:{review}/api/jobs"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10, context=context)
        assert refused.value.code == 401
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to the TLS port: no answer
            urllib.request.urlopen(f"http://127.0.0.1:{review}/api/jobs", timeout=10)
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {cluster.security.token}"})
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            assert json.loads(response.read()) == {"jobs": []}
        with urllib.request.urlopen(f"https://127.0.0.1:{review}/review/", timeout=10, context=context) as page:
            assert b"Distillery review" in page.read()  # the shell is open; it holds no data
    finally:
        cluster.down(on_event=lambda _: None)
