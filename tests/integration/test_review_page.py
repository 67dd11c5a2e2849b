"""The review page (services/pipeline/review_server.py) on a real HTTP server on loopback, over a job
whose data the real validator wrote into a real artifact store: its API (auth, body limit, bad
decisions), the decisions a retune trains on, and the page itself in a real headless Chromium
(Debian's chromium through its chromedriver, installed by `make setup`): a row rejected with a
click is gone from the training rows the next retune gets, and the test set approval is saved.

The whole loop on a job the real services ran (generator → validator → retune through the page)
is in tests/reliability/test_distillation_under_kill9.py."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from distillery.v1 import pipeline_pb2

from services.common.artifacts import ArtifactStore
from services.common.convert import artifact_to_proto, message_to_dict, task_to_proto
from services.common.errors import InvalidArgument
from services.common.jobs import JobRunner, OperationContext
from services.common.operations import open_operation_store
from services.common.taskspec import TaskSpec
from services.pipeline.handler import DISTILLATION, RETUNE, job_request
from services.pipeline.local_security import ensure_local_security
from services.pipeline.review import (
    ACCEPT,
    REJECT,
    ReviewDecisions,
    ReviewFile,
    review_rows,
    reviewed_training_rows,
)
from services.pipeline.review_server import ReviewHandler, ReviewServer
from services.pipeline.servicer import distillation_from_record, retune_from_record
from services.pipeline.stages import SUCCEEDED, PipelineState, StateFile
from services.validator.config import build_config
from services.validator.filters.length import TokenCounter
from services.validator.pipeline import validate
from tests.helpers.browser import review_in_browser
from tests.helpers.http_limits import answer_to_declared_length

TOKEN = "review-secret-token"
SPEC = TaskSpec(name="banking", type="classification",
                description="Classify banking customer support messages by intent.",
                labels=["card", "transfer", "balance"])
SEEDS = [("My card was declined at the shop", "card"), ("How do I send money to my friend", "transfer"),
         ("What is my account balance right now", "balance"), ("I lost my debit card on the bus", "card")]
TEST = [("Why was my card blocked yesterday evening", "card"), ("Can I cancel a transfer I made", "transfer")]
GENERATED = [
    ("My credit card got swallowed by the cash machine", "card", 0.91),
    ("Send 200 dollars to my brother overseas", "transfer", 0.88),
    ("Show me how much is in my checking account", "balance", 0.95),
    ("Tell me the remaining funds on my savings", "balance", 0.83),
    ("The chip on my card stopped working", "card", 0.77),
    ("MY CREDIT CARD got swallowed by the cash-machine!!", "card", 0.90),  # duplicate of row 1
    ("My card PIN is not accepted anymore", "card", 0.20),  # low confidence
]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def job(tmp_path: Path):
    """A pipeline runner (real SQLite store, real artifact store) holding one distillation job
    whose validate stage is what the real validator made of GENERATED."""
    store = ArtifactStore((tmp_path / "store").as_uri())
    runner = JobRunner("pipeline", open_operation_store(f"sqlite:///{tmp_path / 'ops.db'}"), store, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    seeds = store.put_file("inputs/seeds.jsonl", _jsonl(data / "seeds.jsonl",
                                                         [{"input": i, "output": o} for i, o in SEEDS]))
    test = store.put_file("inputs/test.jsonl", _jsonl(data / "test.jsonl",
                                                       [{"input": i, "output": o, "id": f"t{n}"}
                                                        for n, (i, o) in enumerate(TEST)]))
    generated = _jsonl(data / "generated.jsonl", [
        {"input": text, "output": label, "id": f"g{n}",
         "metadata": {"label_probability": p, "teacher_label": label, "target_label": label, "label_source": "teacher"}}
        for n, (text, label, p) in enumerate(GENERATED)])
    outcome = validate(SPEC, generated, data / "validated", build_config({"label_floor": {"min_rows": 1}}),
                       seeds=data / "seeds.jsonl", test=data / "test.jsonl",
                       token_counter=TokenCounter(None, "whitespace"))
    accepted = store.put_file("jobs/validate/accepted.jsonl", outcome.accepted)
    rejected = store.put_file("jobs/validate/rejected.jsonl", outcome.rejected)

    def handler(ctx: OperationContext) -> dict[str, Any]:  # the state a finished validate stage leaves
        state = PipelineState.new(ctx.name, SPEC.name)
        for name in ("generate", "validate"):
            state.stage(name).state = SUCCEEDED
        state.stage("validate").artifacts = {"accepted": accepted.to_dict(), "rejected": rejected.to_dict()}
        StateFile(ctx.work_dir / "state.json").save(state)
        return {}

    runner.register(DISTILLATION, handler)
    request = pipeline_pb2.StartDistillationRequest(task=task_to_proto(SPEC), seeds=artifact_to_proto(seeds),
                                                    test=artifact_to_proto(test))
    record = runner.submit(DISTILLATION, message_to_dict(request), "review-job")
    runner.wait(record.name, timeout=30)
    reviews = ReviewHandler(runner, lambda name: job_request(runner, name, distillation_from_record,
                                                             retune_from_record))
    server = ReviewServer(reviews, "127.0.0.1", 0, TOKEN).start()
    yield {"runner": runner, "name": record.name, "id": record.short_id, "server": server, "store": store,
           "base": f"http://127.0.0.1:{server.port}"}
    server.stop()
    runner.shutdown()


def _call(url: str, body: Any = None, token: str | None = TOKEN, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text or b"{}")
        except json.JSONDecodeError:  # starlette's own plain-text 404 for a path no route has
            return exc.code, {"raw": text.decode(errors="replace")}


def test_the_api_lists_rows_with_labels_confidence_and_verdicts(job: dict) -> None:
    status, body = _call(f"{job['base']}/api/jobs/{job['id']}/review")
    assert status == 200
    rows = {row["id"]: row for row in body["rows"]}
    assert set(rows) == {f"g{n}" for n in range(len(GENERATED))}
    assert rows["g0"]["verdict"] == "accepted" and rows["g0"]["confidence"] == pytest.approx(0.91)
    assert rows["g0"]["teacher_label"] == "card"
    assert rows["g5"]["verdict"] == "rejected" and rows["g5"]["reason"] == "duplicate"
    assert rows["g6"]["reason"] == "low_confidence" and rows["g6"]["detail"]
    assert body["test"]["count"] == len(TEST) and not body["test"]["approved"]
    assert body["job"]["labels"] == SPEC.labels
    status, listed = _call(f"{job['base']}/api/jobs")
    assert status == 200 and [j["id"] for j in listed["jobs"]] == [job["id"]]


def test_the_api_refuses_calls_without_the_token_bad_decisions_and_big_bodies(job: dict) -> None:
    url = f"{job['base']}/api/jobs/{job['id']}/review"
    assert _call(url, token=None)[0] == 401
    assert _call(url, token="wrong")[0] == 401
    status, body = _call(url, {"rows": {"g0": "maybe"}})
    assert status == 400 and "'maybe' is not one of accept, reject" in body["error"]["message"]
    status, body = _call(url, {"rows": {"no-such-row": REJECT}})
    assert status == 400 and "'no-such-row' is not a row of this job" in body["error"]["message"]
    status, body = _call(url, {"rows": {}, "colour": "red"})
    assert status == 400 and "colour" in body["error"]["message"]
    assert _call(url, raw=b"{not json")[0] == 400
    # An oversized body is refused from its Content-Length, before a byte of it is read.
    answer = answer_to_declared_length(job["server"].port, f"/api/jobs/{job['id']}/review", TOKEN, 50000000)
    assert answer.startswith(b"HTTP/1.1 413") and b"50000000 bytes (Content-Length)" in answer
    status, body = _call(f"{job['base']}/api/jobs/..%2F..%2Fetc/review")
    assert status in (400, 404)
    assert _call(f"{job['base']}/api/jobs/ffffffffffff/review")[0] == 404
    # Nothing was saved by any of the refused calls.
    assert ReviewFile(job["runner"].work_root / job["id"]).load() is None


def test_decisions_are_saved_and_shape_the_retune_training_rows(job: dict) -> None:
    url = f"{job['base']}/api/jobs/{job['id']}/review"
    status, saved = _call(url, {"rows": {"g1": REJECT, "g6": ACCEPT}, "test_approved": True})
    assert status == 200 and saved["rows"] == {"g1": REJECT, "g6": ACCEPT} and saved["test_approved"]
    status, body = _call(url)
    assert body["decisions"]["rows"] == saved["rows"] and body["test"]["approved"]
    assert {r["id"]: r["decision"] for r in body["rows"]}["g1"] == REJECT
    runner = job["runner"]
    state = StateFile(runner.work_root / job["id"] / "state.json").load()
    decisions = ReviewFile(runner.work_root / job["id"]).load()
    assert decisions is not None
    before = [r.id for r in review_rows(job["store"], state) if r.verdict == "accepted"]
    reviewed = reviewed_training_rows(job["store"], state, decisions)
    ids = [row["id"] for row in reviewed.rows]
    assert "g1" not in ids and "g6" in ids and len(ids) == len(before)  # one out, one in
    assert (reviewed.rejected_by_hand, reviewed.accepted_by_hand) == (1, 1)
    # "" clears a decision; the rows are back as the validator left them.
    status, saved = _call(url, {"rows": {"g1": "", "g6": ""}})
    assert saved["rows"] == {}
    assert [r["id"] for r in reviewed_training_rows(job["store"], state, ReviewDecisions()).rows] == before


def test_a_malformed_row_cannot_be_accepted_and_a_torn_review_file_is_named(job: dict, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not one of accept, reject"):
        ReviewDecisions.from_dict({"rows": {"g0": "yes"}}, "review.json")
    path = job["runner"].work_root / job["id"] / "review.json"
    path.write_text('{"rows": {"g0": "rej', encoding="utf-8")
    status, body = _call(f"{job['base']}/api/jobs/{job['id']}/review")
    assert status == 409 and "review.json: not valid JSON" in body["error"]["message"]


def test_a_retune_of_a_retune_still_finds_the_task(job: dict) -> None:
    runner = job["runner"]
    runner.register(RETUNE, lambda ctx: {})
    first = runner.submit(RETUNE, message_to_dict(pipeline_pb2.StartRetuneRequest(job=job["id"])), "r1")
    second = runner.submit(RETUNE, message_to_dict(pipeline_pb2.StartRetuneRequest(job=first.short_id)), "r2")
    request = job_request(runner, second.name, distillation_from_record, retune_from_record)
    assert request.spec.name == SPEC.name and request.test.uri.endswith("inputs/test.jsonl")


def test_the_page_in_a_real_browser_rejects_a_row_and_approves_the_test_set(job: dict) -> None:
    review_in_browser(f"{job['base']}/review/{job['id']}#token={TOKEN}", "g0")
    runner = job["runner"]
    decisions = ReviewFile(runner.work_root / job["id"]).load()
    assert decisions is not None and decisions.rows == {"g0": REJECT} and decisions.test_approved
    state = StateFile(runner.work_root / job["id"] / "state.json").load()
    assert "g0" not in [row["id"] for row in reviewed_training_rows(job["store"], state, decisions).rows]
    assert decisions.updated_at <= time.time()


def test_the_page_over_https_with_the_platform_certificate(job: dict, tmp_path: Path) -> None:
    """`distillery up --secure`: the page is HTTPS with the services' certificate; a plain HTTP
    call gets no answer, the browser (trusting exactly that certificate) works as over HTTP."""
    security = ensure_local_security(tmp_path / "home")
    cert, key = Path(security["DISTILLERY_TLS_CERT"]), Path(security["DISTILLERY_TLS_KEY"])
    server = ReviewServer(job["server"].handler, "127.0.0.1", 0, TOKEN, cert, key).start()
    try:
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _call(f"http://127.0.0.1:{server.port}/api/jobs")
        review_in_browser(f"https://127.0.0.1:{server.port}/review/{job['id']}#token={TOKEN}", "g2", trust_cert=cert)
    finally:
        server.stop()
    decisions = ReviewFile(job["runner"].work_root / job["id"]).load()
    assert decisions is not None and decisions.rows == {"g2": REJECT}


def test_distillery_review_builds_the_pages_address(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from services.common.config import ClientSecurity
    from services.pipeline.cli import review_url

    monkeypatch.setenv("DISTILLERY_PIPELINE_ADDR", "10.0.0.7:50050")
    monkeypatch.setenv("DISTILLERY_REVIEW_PORT", "9050")
    assert review_url("abc", ClientSecurity()) == "http://10.0.0.7:9050/review/abc"
    secure = ClientSecurity(token="t0k", ca=tmp_path / "ca.pem")
    assert review_url("abc", secure) == "https://10.0.0.7:9050/review/abc#token=t0k"  # the token never in a query
    monkeypatch.setenv("DISTILLERY_REVIEW_URL", "https://review.example.org/")
    assert review_url("abc", secure) == "https://review.example.org/review/abc#token=t0k"
