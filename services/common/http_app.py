"""What every HTTP endpoint of the platform shares (the serving gateway's OpenAI API, the pipeline's
review page): the platform's bearer token, a body size limit enforced before a body is held, and
uvicorn in a thread of the service process with the service's TLS certificate. One place, so a
second HTTP server cannot forget one of them. (starlette and uvicorn are in the requirements of the
services that serve HTTP, serving and pipeline, not in common's: the generator's vLLM environment
pins its own.)"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

#: The default body limit of a JSON API (1 MiB).
MAX_BODY_BYTES = 1 << 20

#: The platform's error codes (services.common.errors) → HTTP status.
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "FAILED_PRECONDITION": 409, "ALREADY_EXISTS": 409,
               "RESOURCE_EXHAUSTED": 429, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "UNAVAILABLE": 503,
               "ABORTED": 409, "CANCELLED": 499, "INTERNAL": 500}

ErrorBody = Callable[[int, str, str], Response]


def openai_error(status: int, message: str, code: str = "") -> JSONResponse:
    """The OpenAI error shape (what the openai client parses)."""
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code or None}},
                        status_code=status)


class BearerAuth:
    """ASGI middleware: ``Authorization: Bearer <token>`` on every path but ``open_paths``
    (health probes, a static page shell that holds no data). No token configured: open, as the
    gRPC servers are then."""

    def __init__(self, app: Any, token: str | None, open_paths: Iterable[str] = ("/health",),
                 error: ErrorBody = openai_error, open_prefixes: Iterable[str] = ()) -> None:
        self.app, self.token = app, token
        self.open_paths, self.open_prefixes = frozenset(open_paths), tuple(open_prefixes)
        self.error = error

    def _is_open(self, path: str) -> bool:
        return path in self.open_paths or any(path.startswith(prefix) for prefix in self.open_prefixes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.token and scope["type"] == "http" and not self._is_open(scope["path"]):
            headers = dict(scope.get("headers") or [])
            supplied = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(supplied.encode(), f"Bearer {self.token}".encode()):
                response = self.error(401, "missing or invalid bearer token: send 'Authorization: Bearer <token>'",
                                      "invalid_api_key")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: refuses a body over ``limit`` bytes before holding it: at once from a
    Content-Length header that says so, else while it streams in (chunked uploads), keeping at most
    ``limit`` bytes. A body within the limit is replayed to the app unchanged."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES, error: ErrorBody = openai_error) -> None:
        self.app, self.limit, self.error = app, limit, error

    async def _refuse(self, scope: Any, receive: Any, send: Any, size: str) -> None:
        response = self.error(413, f"request body is {size}; the limit is {self.limit} bytes", "body_too_large")
        await response(scope, receive, send)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self.error(400, "Content-Length is not an integer", "bad_request")(scope, receive, send)
                return
            if length > self.limit:
                await self._refuse(scope, receive, send, f"{length} bytes (Content-Length)")
                return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await self._refuse(scope, receive, send, f"over {received} bytes and still coming")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class HttpThread:
    """An ASGI app served by uvicorn in a daemon thread of this process; HTTPS with the service's
    certificate when it has one (bearer tokens never cross in clear). ``port=0`` picks a free port
    (read ``port`` after ``start``)."""

    def __init__(self, app: Any, host: str, port: int, name: str, tls_cert: Path | None = None,
                 tls_key: Path | None = None) -> None:
        self.app, self.host, self.port, self.name = app, host, port, name
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.server: Any = None
        self.thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def start(self, timeout: float = 30.0) -> HttpThread:
        import uvicorn

        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5,
                                ssl_certfile=str(self.tls_cert) if self.tls_cert else None,
                                ssl_keyfile=str(self.tls_key) if self.tls_key else None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=self.name, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise OSError(f"{self.name} could not listen on {self.host}:{self.port}")
        if self.port == 0:
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
        log.info("%s: %s on %s:%d", self.name, self.scheme.upper(), self.host, self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
