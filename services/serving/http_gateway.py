"""OpenAI-compatible HTTP API over the model repository (starlette + uvicorn, in a thread of the
serving process): ``GET /v1/models``, ``POST /v1/chat/completions`` (``stream`` included), so the
openai Python client and anything built on it work unchanged.

The model answers its task: the last user message is the input (for multi-turn tool calling the
whole conversation); the task's own system prompt (services.common.student_format) replaces any
system message, because that is the prompt the student was trained on. Decoding is greedy; the
task's constraint applies unless the body says ``"unconstrained": true``. Extensions: ``context``
(open-book passage) and, in the answer, ``label_probabilities`` for classification."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.common.errors import DistilleryError, InvalidArgument
from services.common.http_app import HTTP_STATUS, MAX_BODY_BYTES, BearerAuth, BodyLimit, HttpThread
from services.serving.repository import ModelRepository

log = logging.getLogger(__name__)


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                        status_code=status)


def split_model(model: Any) -> tuple[str, str]:
    """``name`` or ``name:version``."""
    if not isinstance(model, str) or not model:
        raise InvalidArgument("'model' must be a non-empty string (a model name, or name:version)")
    name, _, version = model.partition(":")
    return name, version


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    raise InvalidArgument("message content must be a string or a list of text parts")


def chat_input(task_type: str, messages: Any) -> str:
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise InvalidArgument("'messages' must be a non-empty list of {role, content} objects")
    if task_type == "multi-turn-tool-calling":
        turns = [{"role": m.get("role"), "content": _content_text(m.get("content"))}
                 for m in messages if m.get("role") != "system"]
        return json.dumps(turns)
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise InvalidArgument("'messages' has no user message")
    return _content_text(users[-1].get("content"))


class HttpGateway:
    def __init__(self, repository: ModelRepository, host: str = "127.0.0.1", port: int = 8000,
                 token: str | None = None, tls_cert: Path | None = None, tls_key: Path | None = None) -> None:
        self.repository = repository
        self.token = token
        # HTTPS with the gRPC server's certificate: bearer tokens never cross in clear.
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.host, self.port = host, port
        self.app = Starlette(routes=[
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
        ])
        # Outermost first: auth before anything is read, then the body limit.
        self.app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
        self.app.add_middleware(BearerAuth, token=token)
        self.http: HttpThread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> HttpGateway:
        self.http = HttpThread(self.app, self.host, self.port, "http-gateway", self.tls_cert, self.tls_key).start()
        self.port = self.http.port
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()

    # ---- routes ----------------------------------------------------------------------------------

    def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _model_object(self, name: str, version: str) -> dict[str, Any]:
        return {"id": name if version == self.repository.versions(name)[-1] else f"{name}:{version}",
                "object": "model", "created": 0, "owned_by": "distillery",
                "root": f"{name}:{version}", "task_type": self.repository.entry(name, version).task.get("type")}

    def models(self, request: Request) -> Response:
        data = []
        for entry in self.repository.list():
            data.append(self._model_object(entry.name, entry.version))
            if entry.version == self.repository.versions(entry.name)[-1]:
                data.append({**self._model_object(entry.name, entry.version), "id": f"{entry.name}:{entry.version}"})
        return JSONResponse({"object": "list", "data": data})

    def model(self, request: Request) -> Response:
        try:
            name, version = split_model(request.path_params["model"])
            runtime = self.repository.get(name, version)
        except DistilleryError as exc:
            return _error(HTTP_STATUS.get(exc.code, 500), exc.message, code="model_not_found")
        return JSONResponse({**self._model_object(runtime.name, runtime.version), "id": request.path_params["model"]})

    async def chat(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        raw = await request.body()  # at most MAX_BODY_BYTES: BodyLimit refused anything larger
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise InvalidArgument("the request body must be a JSON object")
            return await run_in_threadpool(self._chat, body)
        except json.JSONDecodeError as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        except DistilleryError as exc:
            status = HTTP_STATUS.get(exc.code, 500)
            return _error(status, exc.message, "not_found_error" if status == 404 else "invalid_request_error",
                          "model_not_found" if status == 404 else None)
        except Exception:
            incident = uuid.uuid4().hex[:8]
            log.exception("chat completion failed (incident %s)", incident)
            return _error(500, f"internal error (incident {incident}); the server log has the details", "server_error")

    def _chat(self, body: dict[str, Any]) -> Response:
        name, version = split_model(body.get("model"))
        runtime = self.repository.get(name, version)
        if int(body.get("n") or 1) != 1:
            raise InvalidArgument("only n=1 is supported (decoding is greedy)")
        text = chat_input(runtime.spec.type, body.get("messages"))
        context = body.get("context") or ""
        if not isinstance(context, str):
            raise InvalidArgument("'context' must be a string")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
            raise InvalidArgument("'max_tokens' must be an integer")
        constrained = not bool(body.get("unconstrained"))
        model_id = body["model"]
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        if body.get("stream"):
            # Validate before the 200 goes out: errors after that can only end the stream.
            runtime.generator.encode_prompt(text, context)  # type: ignore[attr-defined]
            if max_tokens is not None:
                runtime.generator._check_max_tokens(max_tokens)  # type: ignore[attr-defined]
            return StreamingResponse(self._stream(runtime, text, context, max_tokens, model_id, completion_id, created),
                                     media_type="text/event-stream")
        prediction = runtime.predict([text], [context], max_tokens, constrained=constrained)[0]
        prompt_tokens = prediction.prompt_tokens
        answer: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": prediction.output},
                         "finish_reason": prediction.finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": prediction.completion_tokens,
                      "total_tokens": prompt_tokens + prediction.completion_tokens},
        }
        if prediction.label_probabilities:
            answer["label_probabilities"] = prediction.label_probabilities
        return JSONResponse(answer)

    def _stream(self, runtime: Any, text: str, context: str, max_tokens: int | None, model_id: str,
                completion_id: str, created: int) -> Iterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return "data: " + json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                          "model": model_id,
                                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                                       "logprobs": None}]}) + "\n\n"

        yield chunk({"role": "assistant", "content": ""})
        try:
            for delta in runtime.stream(text, context, max_tokens):
                yield chunk({"content": delta})
        except Exception as exc:  # the status line is gone; say it in the stream
            log.warning("stream failed: %s", exc)
            yield "data: " + json.dumps({"error": {"message": str(exc), "type": "server_error"}}) + "\n\n"
            return
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"
