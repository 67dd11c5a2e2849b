"""The OpenAI-compatible HTTP gateway's edges that need no model: auth, malformed bodies, unknown
models (the answers themselves are tested against a real student in the integration tests)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from services.common.errors import InvalidArgument
from services.serving.http_gateway import HttpGateway, chat_input, split_model
from services.serving.repository import ModelRepository


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
    status, body = _call(gateway, "/v1/chat/completions", b"x" * (2 << 20))
    assert status == 400 and "limit" in body["error"]["message"]


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
