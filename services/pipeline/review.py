"""A person looks at a job's data before trusting it (distilabel + Argilla's loop, without a second
server): every generated row with the teacher's label, its confidence and the validator's verdict
and reason; decisions to accept or reject rows by hand and to approve the test set, saved with the
job; a retune of the job trains on the data as reviewed.

Core code over typed objects: the HTTP edge is services/pipeline/review_server.py.

Rows are keyed by their example id (a hash of input and context, set by the generator), so a
decision survives a retune that validates the same generated rows again with other settings. Two
generated rows with the same id are the same example: rejecting it removes every accepted copy;
accepting a rejected one adds it once, unless a copy of it is already accepted."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from services.common.artifacts import Artifact, ArtifactStore
from services.common.atomic import write_json_atomic
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.jsonl import dumps, iter_jsonl
from services.pipeline.stages import SUCCEEDED, PipelineState

ACCEPT, REJECT = "accept", "reject"
DECISIONS = (ACCEPT, REJECT)
REVIEW_FILE = "review.json"
#: The most rows one review page lists (a larger job is reviewed by its first rows).
MAX_ROWS = 20_000
#: The most test examples the page shows for approval (the approval covers the whole file: its hash).
MAX_TEST_ROWS = 2_000


@dataclass
class ReviewRow:
    """One generated row as the reviewer sees it."""

    id: str
    input: str
    output: str  # the label (or answer) the row would train on
    context: str = ""
    teacher_label: str = ""
    target_label: str = ""  # the label the row was generated for (classification)
    confidence: float | None = None  # the teacher's probability of ``output``
    label_source: str = ""
    verdict: str = "accepted"  # "accepted" | "rejected" by the validator
    reason: str = ""  # the validator's reason code, for a rejected row
    detail: str = ""
    line: int = 0  # line in the generated file (rejected rows); 0 when the validator did not say
    decision: str = ""  # "", "accept" or "reject": what the reviewer decided
    example: dict[str, Any] | None = field(default=None, repr=False)  # the row as it would be trained on

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("example")
        return data


@dataclass
class ReviewDecisions:
    """What the reviewer decided, saved with the job (``review.json`` in its work directory)."""

    rows: dict[str, str] = field(default_factory=dict)  # row id → "accept" | "reject"
    test_approved: bool = False
    test_sha256: str = ""  # the test file the approval was given for
    updated_at: float = 0.0
    approved_at: float = 0.0
    source: str = ""  # for a retune: the job whose review this is a snapshot of

    @property
    def empty(self) -> bool:
        return not self.rows and not self.test_approved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = REVIEW_FILE) -> ReviewDecisions:
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected a JSON object")
        rows = data.get("rows") or {}
        if not isinstance(rows, dict):
            raise InvalidArgument(f"{where}: 'rows' must map row ids to \"accept\" or \"reject\"")
        for key, value in rows.items():
            if value not in DECISIONS:
                raise InvalidArgument(f"{where}: row {key!r}: decision {value!r} is not one of accept, reject")
        return cls(rows={str(k): str(v) for k, v in rows.items()}, test_approved=bool(data.get("test_approved")),
                   test_sha256=str(data.get("test_sha256") or ""), updated_at=float(data.get("updated_at") or 0),
                   approved_at=float(data.get("approved_at") or 0), source=str(data.get("source") or ""))

    def changed(self, rows: dict[str, Any], known: Iterable[str], test_approved: bool | None = None,
                test_sha256: str = "") -> ReviewDecisions:
        """These decisions with ``rows`` applied (a value of "" or None clears a decision); every
        id must be one of ``known`` (the job's rows) and every value a decision."""
        known = set(known)
        merged = dict(self.rows)
        for key, value in rows.items():
            if key not in known:
                raise InvalidArgument(f"row {key!r} is not a row of this job")
            if value in ("", None):
                merged.pop(key, None)
            elif value in DECISIONS:
                merged[key] = value
            else:
                raise InvalidArgument(f"row {key!r}: decision {value!r} is not one of accept, reject (or \"\" to clear)")
        now = time.time()
        approved, approved_at, sha = self.test_approved, self.approved_at, self.test_sha256
        if test_approved is not None:
            approved, approved_at, sha = bool(test_approved), (now if test_approved else 0.0), (
                test_sha256 if test_approved else "")
        return ReviewDecisions(rows=merged, test_approved=approved, test_sha256=sha, updated_at=now,
                               approved_at=approved_at, source=self.source)


class ReviewFile:
    """A job's decisions on disk, replaced atomically; one writer at a time in this process."""

    _lock = threading.Lock()  # class-wide: one review server writes many jobs' files

    def __init__(self, work_dir: Path) -> None:
        self.path = Path(work_dir) / REVIEW_FILE

    def load(self) -> ReviewDecisions | None:
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FailedPrecondition(f"{self.path}: not valid JSON ({exc}); fix or delete it") from None
        return ReviewDecisions.from_dict(data, str(self.path))

    def save(self, decisions: ReviewDecisions) -> None:
        with self._lock:
            write_json_atomic(self.path, decisions.to_dict())


def decisions_of(work_dir: Path, state: PipelineState) -> ReviewDecisions:
    """The job's decisions: its own file, else the snapshot a retune took of its source's."""
    saved = ReviewFile(work_dir).load()
    if saved is not None:
        return saved
    if state.review:
        return ReviewDecisions.from_dict(state.review, f"{state.name}: review snapshot")
    return ReviewDecisions()


def _validated(store: ArtifactStore, state: PipelineState) -> tuple[Artifact, Artifact | None]:
    stage = state.stage("validate")
    if stage.state != SUCCEEDED or "accepted" not in stage.artifacts:
        raise FailedPrecondition(f"job {state.name} has no validated data yet (validate stage: {stage.state}); "
                                 "review it once validation is done")
    rejected = stage.artifacts.get("rejected")
    return Artifact.from_dict(stage.artifacts["accepted"]), (Artifact.from_dict(rejected) if rejected else None)


def _row(example: dict[str, Any], verdict: str, reason: str = "", detail: str = "", line: int = 0) -> ReviewRow:
    meta = example.get("metadata") if isinstance(example.get("metadata"), dict) else {}
    probability = meta.get("label_probability")
    output = example.get("output")
    return ReviewRow(id=str(example.get("id") or ""), input=str(example.get("input") or ""),
                     output=output if isinstance(output, str) else json.dumps(output, ensure_ascii=False),
                     context=str(example.get("context") or ""), teacher_label=str(meta.get("teacher_label") or ""),
                     target_label=str(meta.get("target_label") or ""),
                     confidence=float(probability) if isinstance(probability, (int, float)) else None,
                     label_source=str(meta.get("label_source") or ""), verdict=verdict, reason=reason,
                     detail=detail, line=line, example=example)


def review_rows(store: ArtifactStore, state: PipelineState, decisions: ReviewDecisions | None = None,
                limit: int = MAX_ROWS) -> list[ReviewRow]:
    """The job's validated rows (accepted first, then rejected in the generated file's order),
    with the reviewer's decisions. Malformed rows are listed (id ``line-N``) but cannot be accepted:
    there is no example to train on."""
    accepted, rejected = _validated(store, state)
    rows: list[ReviewRow] = []
    for item in iter_jsonl(store.local_path(accepted)):
        if item.error is None and isinstance(item.value, dict):
            rows.append(_row(item.value, "accepted"))
    if rejected is not None:
        for item in iter_jsonl(store.local_path(rejected)):
            value = item.value if item.error is None and isinstance(item.value, dict) else {}
            line = int(value.get("line") or item.line)
            example = value.get("example")
            if isinstance(example, dict):
                rows.append(_row(example, "rejected", str(value.get("reason") or ""), str(value.get("detail") or ""),
                                 line))
            else:  # malformed: the raw line only
                rows.append(ReviewRow(id=f"line-{line}", input=str(value.get("raw") or "")[:2000], output="",
                                      verdict="rejected", reason=str(value.get("reason") or "malformed"),
                                      detail=str(value.get("detail") or ""), line=line))
    rows = rows[:limit]
    if decisions is not None:
        for row in rows:
            row.decision = decisions.rows.get(row.id, "")
    return rows


@dataclass
class ReviewedData:
    """The training rows as reviewed, and what the review changed."""

    rows: list[dict[str, Any]]
    rejected_by_hand: int
    accepted_by_hand: int

    def jsonl(self) -> bytes:
        return "".join(dumps(row) + "\n" for row in self.rows).encode("utf-8")


def reviewed_training_rows(store: ArtifactStore, state: PipelineState, decisions: ReviewDecisions) -> ReviewedData:
    """The validator's accepted rows minus those rejected by hand, plus the rejected rows accepted
    by hand (once each, and not when a copy of the example is already accepted)."""
    rows = review_rows(store, state, limit=10**9)
    kept: list[dict[str, Any]] = []
    taken: set[str] = set()
    rejected_by_hand = accepted_by_hand = 0
    for row in rows:
        decision = decisions.rows.get(row.id, "")
        if row.verdict == "accepted":
            if decision == REJECT:
                rejected_by_hand += 1
                continue
            kept.append(row.example or {})
            taken.add(row.id)
        elif decision == ACCEPT and row.example is not None and row.id not in taken:
            kept.append(row.example)
            taken.add(row.id)
            accepted_by_hand += 1
    return ReviewedData(kept, rejected_by_hand, accepted_by_hand)


def test_rows(store: ArtifactStore, test: Artifact, limit: int = MAX_TEST_ROWS) -> tuple[list[dict[str, Any]], int, str]:
    """The test set as the page shows it: its first ``limit`` examples, its size and its sha256
    (what an approval is given for)."""
    path = store.local_path(test)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    shown: list[dict[str, Any]] = []
    count = 0
    for item in iter_jsonl(path):
        if item.error is not None or not isinstance(item.value, dict):
            continue
        count += 1
        if len(shown) < limit:
            output = item.value.get("output")
            shown.append({"id": str(item.value.get("id") or count), "input": str(item.value.get("input") or ""),
                          "context": str(item.value.get("context") or "")[:2000],
                          "output": output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)})
    return shown, count, digest
