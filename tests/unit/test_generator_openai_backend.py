"""The openai backend against a real HTTP server on loopback that answers like an
OpenAI-compatible server and fails on purpose (429, 503, hangs, 400)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from services.generator.backend import CompletionRequest, Constraint
from services.generator.openai_backend import OpenAIBackend, OpenAIConfig


class FlakyServer:
    """Fails the first ``failures`` requests with ``status``, then answers."""

    def __init__(self, failures: int = 0, status: int = 429, hang: float = 0.0, service_time: float = 0.05) -> None:
        self.failures, self.status, self.hang, self.service_time = failures, status, hang, service_time
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with outer.lock:
                    outer.bodies.append(body)
                    fail = len(outer.bodies) <= outer.failures
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.service_time)
                    if fail and outer.hang:
                        time.sleep(outer.hang)
                finally:
                    # Counted out before the answer is written: once the client has the answer it
                    # may send its next request before this thread runs again (a loaded machine).
                    with outer.lock:
                        outer.in_flight -= 1
                if fail:
                    self.send_response(outer.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("retry-after", "0")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": "slow down"}}).encode())
                    return
                prompt = body.get("prompt") or body["messages"][-1]["content"]
                if self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": f"chat:{prompt}"},
                              "finish_reason": "stop"}
                    obj = "chat.completion"
                else:
                    choice = {"index": 0, "text": f"echo:{prompt}", "finish_reason": "stop", "logprobs": None}
                    obj = "text_completion"
                reply = {"id": "x", "object": obj, "created": 0, "model": body["model"], "choices": [choice],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make():
    servers: list[FlakyServer] = []
    backends: list[OpenAIBackend] = []

    def build(settings: dict[str, Any] | None = None, **server_args: Any) -> tuple[FlakyServer, OpenAIBackend]:
        server = FlakyServer(**server_args)
        servers.append(server)
        config = OpenAIConfig.from_ref(f"openai:{server.url}#tiny", {"max_retries": 4, **(settings or {})})
        config.backoff_initial = 0.01
        backend = OpenAIBackend(config)
        backends.append(backend)
        return server, backend
    yield build
    for backend in backends:
        backend.close()
    for server in servers:
        server.close()


def test_retries_429_and_5xx_then_succeeds_in_order(make) -> None:
    server, backend = make(failures=3, status=429)
    constraint = Constraint.json_schema({"type": "object"})
    out = backend.complete(CompletionRequest(prompts=[f"p{i}" for i in range(6)], constraint=constraint,
                                             max_tokens=9, seeds=list(range(6))))
    assert [c.text for c in out] == [f"echo:p{i}" for i in range(6)]
    assert backend.retries == 3 and out[0].prompt_tokens == 5 and out[0].completion_tokens == 3
    body = server.bodies[-1]
    assert body["structured_outputs"] == {"json": {"type": "object"}, "disable_any_whitespace": True}
    assert body["max_tokens"] == 9 and "seed" in body
    server2, backend2 = make(failures=2, status=503)
    assert backend2.complete(CompletionRequest(prompts=[[{"role": "user", "content": "hi"}]]))[0].text == "chat:hi"
    assert backend2.retries == 2


def test_concurrency_limit(make) -> None:
    # Each answer takes 0.5 s, so the client's 3 workers overlap even on a loaded machine.
    server, backend = make({"concurrency": 3}, service_time=0.5)
    backend.complete(CompletionRequest(prompts=[f"p{i}" for i in range(12)]))
    assert 1 < server.max_in_flight <= 3


def test_timeouts_are_retried(make) -> None:
    server, backend = make({"timeout": 0.5}, failures=1, status=200, hang=2.0)
    assert backend.complete(CompletionRequest(prompts=["late"]))[0].text == "echo:late"
    assert backend.retries >= 1


def test_errors_are_typed(make) -> None:
    _, backend = make(failures=100, status=429)
    with pytest.raises(ResourceExhausted, match="rate limiting"):
        backend.complete(CompletionRequest(prompts=["p"]))
    _, backend = make(failures=100, status=502)
    with pytest.raises(Unavailable, match="failed after 5 tries"):
        backend.complete(CompletionRequest(prompts=["p"]))
    server, backend = make(failures=100, status=400)
    with pytest.raises(InvalidArgument, match="400"):
        backend.complete(CompletionRequest(prompts=["p"]))
    assert len(server.bodies) == 1  # a bad request is not retried


def test_response_format_mode(make) -> None:
    server, backend = make({"structured_outputs": "response_format"})
    backend.complete(CompletionRequest(prompts=["p"], constraint=Constraint.json_schema({"type": "object"})))
    assert server.bodies[-1]["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert "structured_outputs" not in server.bodies[-1]


def test_teacher_reference_parsing() -> None:
    config = OpenAIConfig.from_ref("openai:http://127.0.0.1:8000/v1#my-model")
    assert (config.base_url, config.model) == ("http://127.0.0.1:8000/v1", "my-model")
    config = OpenAIConfig.from_ref("openai:", {"base_url": "https://api.example/v1", "model": "m"})
    assert config.base_url == "https://api.example/v1"
    with pytest.raises(InvalidArgument, match="base URL"):
        OpenAIConfig.from_ref("openai:")
    with pytest.raises(InvalidArgument, match="model"):
        OpenAIConfig.from_ref("openai:http://x/v1")
