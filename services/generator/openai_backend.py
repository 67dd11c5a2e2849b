"""Teacher behind any OpenAI-compatible server (``vllm serve``, hosted APIs).

A concurrency limit (a thread pool of ``concurrency`` requests in flight), retries with
exponential backoff and jitter on 429, 5xx, timeouts and dropped connections (honouring
``Retry-After``), and structured outputs sent the vLLM way (``structured_outputs`` in the body)
or as OpenAI's ``response_format``. Text prompts go to /v1/completions (base models, few-shot),
chats to /v1/chat/completions."""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from services.common import envs
from services.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from services.generator.backend import (
    Completion,
    CompletionRequest,
    Constraint,
    PromptInput,
    normalize_probabilities,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass
class OpenAIConfig:
    base_url: str
    model: str
    api_key: str = "EMPTY"
    concurrency: int = 8
    max_retries: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    timeout: float = 120.0
    # "structured_outputs" (vLLM servers) or "response_format" (OpenAI-style hosted APIs).
    structured_mode: str = "structured_outputs"

    @classmethod
    def from_ref(cls, ref: str, settings: dict[str, Any] | None = None) -> OpenAIConfig:
        """``openai:http://host:8000/v1#model-name``, or ``openai`` with generation.base_url,
        generation.model and generation.api_key_env set."""
        settings = dict(settings or {})
        url, _, model = ref.removeprefix("openai:").partition("#")
        base_url = url or str(settings.get("base_url") or "")
        model = model or str(settings.get("model") or "")
        if not base_url.startswith(("http://", "https://")):
            raise InvalidArgument(f"teacher {ref!r}: an openai teacher needs a base URL, e.g. "
                                  "openai:http://127.0.0.1:8000/v1#model-name (or generation.base_url)")
        if not model:
            raise InvalidArgument(f"teacher {ref!r}: name the model after '#' or in generation.model")
        key_env = str(settings.get("api_key_env") or "OPENAI_API_KEY")
        mode = str(settings.get("structured_outputs") or settings.get("structured_mode") or "structured_outputs")
        if mode not in ("structured_outputs", "response_format"):
            raise InvalidArgument(f"generation.structured_outputs must be structured_outputs or response_format, "
                                  f"got {mode!r}")
        return cls(base_url=base_url.rstrip("/"), model=model, api_key=envs.secret(key_env) or "EMPTY",
                   concurrency=int(settings.get("concurrency", 8)), max_retries=int(settings.get("max_retries", 5)),
                   timeout=float(settings.get("timeout", 120.0)), structured_mode=mode)


class OpenAIBackend:
    def __init__(self, config: OpenAIConfig) -> None:
        import openai

        self.config = config
        self.name = f"openai:{config.base_url}#{config.model}"
        self._openai = openai
        # Our own retry loop (below) replaces the client's, so its backoff and counts are ours.
        self.client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key, max_retries=0,
                                    timeout=config.timeout)
        self._pool = ThreadPoolExecutor(max_workers=max(1, config.concurrency), thread_name_prefix="openai-teacher")
        self.retries = 0  # total retries so far (exposed for metrics and tests)

    # ----- request building -------------------------------------------------------------------
    def _constraint_body(self, constraint: Constraint) -> dict[str, Any]:
        """Request-body fields carrying the constraint (sent as extra_body: the completions
        endpoint of the client library has no response_format argument, the servers do)."""
        so = constraint.structured_outputs()
        if so is None:
            return {}
        if self.config.structured_mode == "structured_outputs":
            return {"structured_outputs": so}
        if constraint.kind == "json":
            return {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": "output", "schema": constraint.schema}}}
        if constraint.kind == "choice":
            # No choice constraint in the OpenAI API: an object with a string enum is the closest.
            return {"response_format": {"type": "json_schema", "json_schema": {
                "name": "label", "schema": {"type": "object", "properties": {
                    "label": {"type": "string", "enum": list(constraint.choices)}}, "required": ["label"]}}}}
        return {}

    def _one(self, prompt: PromptInput, request: CompletionRequest, seed: int | None) -> Completion:
        extra_body = self._constraint_body(request.constraint)
        common: dict[str, Any] = dict(model=self.config.model, max_tokens=request.max_tokens,
                                      temperature=request.temperature, top_p=request.top_p)
        if seed is not None:
            common["seed"] = seed
        if request.stop:
            common["stop"] = request.stop
        if extra_body:
            common["extra_body"] = extra_body
        want_probs = request.choice_logprobs and request.constraint.kind == "choice"
        if isinstance(prompt, str):
            if want_probs:
                common["logprobs"] = 20
            response = self._call(lambda: self.client.completions.create(prompt=prompt, **common))
            choice = response.choices[0]
            text = choice.text or ""
            top = None
            if want_probs and choice.logprobs and choice.logprobs.top_logprobs:
                top = choice.logprobs.top_logprobs[0]
        else:
            if want_probs:
                common["logprobs"] = True
                common["top_logprobs"] = 20
            response = self._call(lambda: self.client.chat.completions.create(messages=prompt, **common))
            choice = response.choices[0]
            text = choice.message.content or ""
            top = None
            if want_probs and choice.logprobs and choice.logprobs.content:
                top = {t.token: t.logprob for t in choice.logprobs.content[0].top_logprobs}
        if request.constraint.kind == "choice" and self.config.structured_mode == "response_format":
            text = _unwrap_label(text)
        usage = response.usage
        completion = Completion(text=text, prompt_tokens=usage.prompt_tokens if usage else 0,
                                completion_tokens=usage.completion_tokens if usage else 0,
                                finish_reason=choice.finish_reason or "")
        if want_probs and top:
            completion.choice_probabilities = first_token_probabilities(dict(top), request.constraint.choices)
        return completion

    def _call(self, fn: Any) -> Any:
        openai = self._openai
        delay = self.config.backoff_initial
        for attempt in range(self.config.max_retries + 1):
            try:
                return fn()
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                error: Exception = exc
                wait = delay
            except openai.APIStatusError as exc:
                if exc.status_code not in RETRYABLE_STATUS:
                    raise InvalidArgument(f"teacher server refused the request ({exc.status_code}): "
                                          f"{_message(exc)}") from None
                error = exc
                wait = _retry_after(exc) or delay
            if attempt == self.config.max_retries:
                if isinstance(error, openai.APIStatusError) and error.status_code == 429:
                    raise ResourceExhausted(f"teacher server is rate limiting (429) after {attempt + 1} tries") \
                        from None
                raise Unavailable(f"teacher server {self.config.base_url} failed after {attempt + 1} tries: "
                                  f"{type(error).__name__}: {_message(error)}") from None
            self.retries += 1
            wait = min(self.config.backoff_max, wait) * (0.5 + random.random())  # full jitter around the step
            log.warning("teacher request failed (%s); retry %d in %.2fs", type(error).__name__, attempt + 1, wait)
            time.sleep(wait)
            delay = min(self.config.backoff_max, delay * 2)
        raise AssertionError("unreachable")

    def count_tokens(self, text: str) -> int:
        # A remote teacher's tokenizer is not at hand. Every byte-level BPE token covers at least one
        # UTF-8 byte, so the byte count is an upper bound (a budget from it may be generous, never short).
        return len(text.encode())

    def complete(self, request: CompletionRequest) -> list[Completion]:
        futures = [self._pool.submit(self._one, prompt, request, request.seed_for(i))
                   for i, prompt in enumerate(request.prompts)]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def first_token_probabilities(top: dict[str, float], choices: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Choice probabilities from the top log-probabilities of the first answer token: each
    choice gets the probability of the longest top token that starts it (choices that share a
    first token share its mass)."""
    floor = min(top.values(), default=0.0) - 5.0
    logprobs: dict[str, float] = {}
    for choice in choices:
        matches = [(len(tok), lp) for tok, lp in top.items() if tok and choice.startswith(tok)]
        logprobs[choice] = max(matches)[1] if matches else floor
    return normalize_probabilities(logprobs)


def _unwrap_label(text: str) -> str:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    return str(value.get("label", text)) if isinstance(value, dict) else text


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value else None
    except (AttributeError, ValueError):
        return None


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(exc)[:300]
