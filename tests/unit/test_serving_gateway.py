"""The OpenAI-compatible HTTP gateway's edges that need no model: auth, malformed bodies, unknown
models (the answers themselves are tested against a real student in the integration tests)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import pytest

from services.common.errors import InvalidArgument
from services.serving.http_gateway import HttpGateway, chat_input, split_model
from services.serving.repository import ModelRepository
from tests.helpers.http_limits import answer_to_declared_length


@pytest.fixture(scope="module")
def gateway():
    gw = HttpGateway(ModelRepository(), "127.0.0.1", 0, token="s3cret").start()
    yield gw
    gw.stop()


def _call(gw, path, body=None, token="s3cret"):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{gw.port}{path}", data=data,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_auth_and_errors(gateway):
    assert _call(gateway, "/health", token=None)[0] == 200
    status, body = _call(gateway, "/v1/models", token=None)
    assert status == 401 and "bearer token" in body["error"]["message"]
    assert _call(gateway, "/v1/models", token="wrong")[0] == 401
    assert _call(gateway, "/v1/models") == (200, {"object": "list", "data": []})
    status, body = _call(gateway, "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = _call(gateway, "/v1/chat/completions", {"model": "ghost", "messages": [{"role": "user",
                                                                                          "content": "hi"}]})
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, body = _call(gateway, "/v1/chat/completions", {"messages": []})
    assert status == 400 and "'model'" in body["error"]["message"]
    status, body = _post_tolerating_close(gateway, b"x" * (2 << 20))
    assert status == 413 and b"limit" in body


def _post_tolerating_close(gw, body, **kwargs):
    """POST that still reads the answer when the server answers and closes mid-upload (as it does
    for a body over the limit)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"}, **kwargs)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending
    response = conn.getresponse()
    try:
        return response.status, response.read()
    finally:
        conn.close()


def test_oversized_bodies_are_refused_before_they_are_read(gateway):
    # A Content-Length over the limit is answered at once, though not one body byte was sent.
    answer = answer_to_declared_length(gateway.port, "/v1/chat/completions", "s3cret", 1000000000)
    assert answer.startswith(b"HTTP/1.1 413") and b"1000000000 bytes (Content-Length)" in answer
    # Without a length (chunked), the stream is cut off once it passes the limit.
    status, body = _post_tolerating_close(gateway, (b"y" * 65536 for _ in range(64)), encode_chunked=True)  # 4 MiB
    assert status == 413 and b"still coming" in body
    # Unauthenticated uploads are refused before any size check reads them.
    assert _call(gateway, "/v1/chat/completions", b"x" * 10, token=None)[0] == 401


def test_chat_input_and_model_names():
    assert split_model("news:3") == ("news", "3") and split_model("news") == ("news", "")
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]}]
    assert chat_input("classification", messages) == "second"
    turns = json.loads(chat_input("multi-turn-tool-calling", messages))
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    with pytest.raises(InvalidArgument):
        chat_input("classification", [{"role": "system", "content": "only"}])
    with pytest.raises(InvalidArgument):
        split_model(None)
