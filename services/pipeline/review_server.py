"""The review page, served by the pipeline process itself (starlette + uvicorn in a thread, as the
serving gateway): ``distillery review JOB`` opens it. No second server to install, and the same
token and TLS as the platform's gRPC servers (services.common.http_app).

- ``GET /review/`` and ``GET /review/{job}``: the page (a static shell that holds no data; its
  script reads the token from the URL fragment, which browsers never send to a server, and calls
  the API with it).
- ``GET /api/jobs``: the jobs to review. ``GET /api/jobs/{job}/review``: the job's rows with the
  teacher's label, confidence, the validator's verdict and reason, the reviewer's decisions, and
  the test set. ``POST /api/jobs/{job}/review``: ``{"rows": {id: "accept"|"reject"|""},
  "test_approved": true|false}`` → the saved decisions.

A job is named by its id (``distillery jobs``); the server finds its files itself: no path a request
names is ever opened."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.common.artifacts import Artifact
from services.common.errors import DistilleryError, InvalidArgument
from services.common.http_app import HTTP_STATUS, BearerAuth, BodyLimit, HttpThread
from services.common.jobs import JobRunner
from services.pipeline.handler import DistillationRequest, _find_job, job_state
from services.pipeline.review import (
    MAX_ROWS,
    ReviewFile,
    decisions_of,
    review_rows,
    test_rows,
)
from services.pipeline.stages import PipelineState

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("review_page.html")
#: The most bytes a decisions body may have (20k decisions fit in well under this).
MAX_BODY_BYTES = 4 << 20
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _error(status: int, message: str, code: str = "") -> JSONResponse:
    return JSONResponse({"error": {"code": code or str(status), "message": message}}, status_code=status)


class ReviewHandler:
    """The work behind the page: find a job, list its rows with their decisions, save decisions."""

    def __init__(self, runner: JobRunner, request_of: Callable[[str], DistillationRequest]) -> None:
        self.runner = runner
        self.request_of = request_of  # job name → what it distils (its test set)

    def _job(self, ref: str) -> str:
        if not _JOB_ID.match(ref):
            raise InvalidArgument(f"{ref!r} is not a job id (letters, digits, - and _; see `distillery jobs`)")
        return _find_job(self.runner, ref)

    def _work_dir(self, name: str) -> Path:
        return self.runner.work_root / self.runner.ops.get(name).short_id

    def jobs(self) -> list[dict[str, Any]]:
        jobs = []
        for record in self.runner.ops.list(service="pipeline", limit=200):
            state = job_state(self.runner, record.name)
            jobs.append({"name": record.name, "id": record.short_id, "kind": record.kind, "state": state.state,
                         "task": state.task_name})
        return jobs

    def test_of(self, name: str, state: PipelineState) -> Artifact | None:
        """The job's test set: its request's, or the one its traces stage held out."""
        held_out = state.stage("traces").artifacts.get("test")
        return Artifact.from_dict(held_out) if held_out else self.request_of(name).test

    def review(self, ref: str) -> dict[str, Any]:
        name = self._job(ref)
        state = job_state(self.runner, name)
        decisions = decisions_of(self._work_dir(name), state)
        rows = review_rows(self.runner.store, state, decisions)
        request = self.request_of(name)
        test, test_count, test_sha = test_rows(self.runner.store, self.test_of(name, state))
        return {
            "job": {"name": name, "id": self.runner.ops.get(name).short_id, "state": state.state,
                    "task": request.spec.name, "type": request.spec.type, "labels": list(request.spec.labels),
                    "description": request.spec.description},
            "rows": [row.to_dict() for row in rows],
            "truncated": len(rows) >= MAX_ROWS,
            "decisions": decisions.to_dict(),
            "test": {"rows": test, "count": test_count, "sha256": test_sha,
                     "approved": decisions.test_approved and decisions.test_sha256 == test_sha},
        }

    def decide(self, ref: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidArgument("the body must be a JSON object: {\"rows\": {id: \"accept\"|\"reject\"|\"\"}, "
                                  "\"test_approved\": true|false}")
        unknown = sorted(set(body) - {"rows", "test_approved"})
        if unknown:
            raise InvalidArgument(f"unknown field(s) {', '.join(unknown)}; the body has 'rows' and 'test_approved'")
        rows = body.get("rows") or {}
        if not isinstance(rows, dict):
            raise InvalidArgument("'rows' must map row ids to \"accept\", \"reject\" or \"\" (clear)")
        approved = body.get("test_approved")
        if approved is not None and not isinstance(approved, bool):
            raise InvalidArgument("'test_approved' must be true or false")
        name = self._job(ref)
        state = job_state(self.runner, name)
        work_dir = self._work_dir(name)
        current = decisions_of(work_dir, state)
        known = {row.id for row in review_rows(self.runner.store, state)}
        sha = test_rows(self.runner.store, self.test_of(name, state), limit=0)[2] if approved else ""
        changed = current.changed(rows, known, approved, sha)
        ReviewFile(work_dir).save(changed)
        log.info("review of %s: %d row decision(s), test set %s", name, len(changed.rows),
                 "approved" if changed.test_approved else "not approved")
        return changed.to_dict()


class ReviewServer:
    """The starlette edge: routes a few lines each, errors as JSON with the platform's codes."""

    def __init__(self, handler: ReviewHandler, host: str = "127.0.0.1", port: int = 8050, token: str | None = None,
                 tls_cert: Path | None = None, tls_key: Path | None = None) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.app = Starlette(routes=[
            Route("/", lambda request: RedirectResponse("/review/"), methods=["GET"]),
            Route("/review/", self.page, methods=["GET"]),
            Route("/review/{job}", self.page, methods=["GET"]),
            Route("/api/jobs", self.jobs, methods=["GET"]),
            Route("/api/jobs/{job}/review", self.review, methods=["GET"]),
            Route("/api/jobs/{job}/review", self.decide, methods=["POST"]),
            Route("/health", lambda request: JSONResponse({"status": "ok"}), methods=["GET"]),
        ])
        # Outermost first: auth before anything is read, then the body limit. The page shell is
        # open (it holds no data); every /api call needs the token.
        self.app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES, error=_error)
        self.app.add_middleware(BearerAuth, token=token, open_paths=("/", "/health"), open_prefixes=("/review/",),
                                error=_error)
        self.http: HttpThread | None = None

    def start(self) -> ReviewServer:
        self.http = HttpThread(self.app, self.host, self.port, "review-page", self.tls_cert, self.tls_key).start()
        self.port = self.http.port
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()

    @staticmethod
    def _call(work: Callable[[], Any]) -> Response:
        try:
            return JSONResponse(work())
        except DistilleryError as exc:
            return _error(HTTP_STATUS.get(exc.code, 500), exc.message, exc.code)

    def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            # The page runs its own inline script only and talks to this server only.
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                       "connect-src 'self'; base-uri 'none'; form-action 'none'"})

    def jobs(self, request: Request) -> Response:
        return self._call(lambda: {"jobs": self.handler.jobs()})

    def review(self, request: Request) -> Response:
        return self._call(lambda: self.handler.review(request.path_params["job"]))

    async def decide(self, request: Request) -> Response:
        raw = await request.body()  # at most MAX_BODY_BYTES: BodyLimit refused anything larger
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            return _error(400, f"the body is not valid JSON: {exc}", "INVALID_ARGUMENT")
        return self._call(lambda: self.handler.decide(request.path_params["job"], body))
