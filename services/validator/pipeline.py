"""The filter chain, streaming: rows are read, checked and written one batch at a time, so memory
holds one batch plus the filters' compact indexes (digests, MinHash signatures of kept rows, one
label per surviving row), not the data set.

Order: format → grounded → length → test_leak → off_topic → label_confidence → agreement → duplicate →
near_duplicate → judge, then label_balance as a second pass over the survivors (it needs the final
label counts), then the label floor (classification: a label left below label_floor.min_rows gets
back its best soft-rejected rows, see filters/label_floor.py). Row-local checks run first so that a
row that fails one never becomes the kept representative of a duplicate cluster; the judge (the
only expensive one) runs last, on what is left. The first failing filter names the row's reason.

Nothing is lost and nothing is half-written: every row read ends in exactly one of accepted.jsonl
and rejected.jsonl — rows the label floor holds in reserve are written at the end, to one or the
other (a line that is not a valid example is rejected as ``malformed`` with its line
number), and the three outputs are written under temporary names and renamed into place at the
end, so an interrupted run leaves nothing that looks finished — it simply runs again."""

from __future__ import annotations

import json
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.errors import InvalidArgument
from services.common.jsonl import dumps, iter_jsonl
from services.common.references import ModelReferences
from services.common.taskspec import TOOL_TASKS, TaskSpec, canonical_json, example_id
from services.validator.config import ValidatorConfig
from services.validator.filters.agreement import AgreementFilter
from services.validator.filters.base import Filter
from services.validator.filters.duplicate import DuplicateFilter
from services.validator.filters.format import FormatFilter
from services.validator.filters.grounded import GroundedFilter
from services.validator.filters.judge import Grader, JudgeFilter
from services.validator.filters.label_balance import auto_share, balance_cap
from services.validator.filters.label_confidence import LabelConfidenceFilter
from services.validator.filters.label_floor import SOFT_REASONS, LabelFloor
from services.validator.filters.length import LengthFilter, TokenCounter, load_token_counter
from services.validator.filters.near_duplicate import NearDuplicateFilter
from services.validator.filters.off_topic import OffTopicFilter
from services.validator.filters.test_leak import TestLeakFilter
from services.validator.report import Report
from services.validator.row import Row, normalize_key

ACCEPTED = "accepted.jsonl"
REJECTED = "rejected.jsonl"
REPORT = "report.json"

Progress = Callable[[int, int, dict[str, float]], None]
_PAST_THE_END = 1 << 62  # a line number after every line of any file


@dataclass
class ValidationOutcome:
    accepted: Path
    rejected: Path
    report_path: Path
    report: dict[str, Any]


@dataclass
class Malformed:
    line: int
    detail: str
    raw: str


@dataclass
class Reference:
    """A seed or test example as the filters need it."""

    input: str
    output: str
    context: str

    @property
    def key(self) -> str:
        return normalize_key(f"{self.context} {self.input}")


def _input_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # multi-turn tool calling: the conversation as JSON text
        return canonical_json(value)
    return None


def read_references(path: Path | None, name: str) -> list[Reference]:
    """Seeds or test rows (inputs; outputs as text). A bad line is the caller's file to fix."""
    if path is None:
        return []
    refs = []
    for item in iter_jsonl(Path(path), skip_partial_tail=False):
        value = item.value
        text = _input_text(value.get("input")) if isinstance(value, dict) else None
        if item.error or text is None:
            raise InvalidArgument(f"{name}:{item.line}: {item.error or 'expected an object with an input'}")
        output = value.get("output", "")
        refs.append(Reference(text, output.strip() if isinstance(output, str) else canonical_json(output),
                              str(value.get("context") or "")))
    return refs


def parse_row(line: int, raw: bytes) -> Row | Malformed | None:
    """One JSONL line → a Row, a Malformed record naming what is wrong, or None for a blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Malformed(line, f"line is not UTF-8 (byte {exc.start})", raw.decode("utf-8", "replace").rstrip("\r\n"))
    text = text.rstrip("\r\n")
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Malformed(line, f"not valid JSON: {exc.msg} (column {exc.colno})", text)
    if not isinstance(value, dict):
        return Malformed(line, f"expected a JSON object, got {type(value).__name__}", text)
    for required in ("input", "output"):
        if required not in value:
            return Malformed(line, f'field "{required}" is missing', text)
    input_text = _input_text(value["input"])
    if input_text is None:
        return Malformed(line, f'field "input" must be a string (or a list of chat messages), '
                               f'got {type(value["input"]).__name__}', text)
    context = value.get("context") or ""
    if not isinstance(context, str):
        return Malformed(line, f'field "context" must be a string, got {type(context).__name__}', text)
    metadata = value.get("metadata") or {}
    if not isinstance(metadata, dict):
        return Malformed(line, f'field "metadata" must be an object, got {type(metadata).__name__}', text)
    raw_output = value["output"]
    output = raw_output if isinstance(raw_output, str) else canonical_json(raw_output)
    row_id = value.get("id")
    return Row(line=line, id=str(row_id) if row_id not in (None, "") else example_id(input_text, context),
               input=input_text, raw_output=raw_output, output=output, context=context, metadata=metadata,
               key=normalize_key(f"{context} {input_text}"))


def read_rows(path: Path) -> Iterator[Row | Malformed]:
    with open(path, "rb") as handle:
        for line, raw in enumerate(handle, start=1):
            parsed = parse_row(line, raw)
            if parsed is not None:
                yield parsed


def count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def label_of(spec: TaskSpec, row: Row) -> str | None:
    """What the per-label counts are keyed by: the label, or the called tools' names."""
    if spec.type == "classification":
        return row.output.strip() or None
    if spec.type in TOOL_TASKS:
        try:
            calls = json.loads(row.output)
        except (json.JSONDecodeError, TypeError):
            return None
        if isinstance(calls, dict):
            calls = [calls]
        if isinstance(calls, list):
            names = sorted({str(c.get("name")) for c in calls if isinstance(c, dict)})
            return "+".join(names) if names else "(no call)"
    return None


def build_filters(spec: TaskSpec, config: ValidatorConfig, seeds: list[Reference], test: list[Reference], *,
                  token_counter: TokenCounter | None, model_cache: Path | None,
                  references: ModelReferences | None, grader: Grader | None,
                  predictions: Path | None) -> list[Filter]:
    filters: list[Filter] = []
    seed_keys = [s.key for s in seeds]
    if config.format.enabled:
        filters.append(FormatFilter(spec))
    if config.grounded.enabled:  # after format: it reads the parsed, canonical output
        filters.append(GroundedFilter(spec, config.grounded))
    if config.length.enabled:
        counter = token_counter or load_token_counter(config.length.tokenizer or spec.student, model_cache, references)
        filters.append(LengthFilter(spec, config.length, counter))
    if config.test_leak.enabled:
        # Calibration pairs: seeds of the same class (classification), else any two seeds.
        classes = [s.output if spec.type == "classification" else "" for s in seeds]
        filters.append(TestLeakFilter(config.test_leak, [t.key for t in test],
                                      [(s.key, group) for s, group in zip(seeds, classes)]))
    if config.off_topic.enabled:
        filters.append(OffTopicFilter(config.off_topic, spec, [s.input for s in seeds]))
    if config.label_confidence.enabled:
        filters.append(LabelConfidenceFilter(config.label_confidence))
    if config.agreement.enabled:
        if config.agreement.predictions and predictions is None:
            predictions = Path(config.agreement.predictions)
        filters.append(AgreementFilter(config.agreement, spec, [(s.input, s.output) for s in seeds],
                                       predictions if config.agreement.predictions else None))
    if config.duplicate.enabled:
        filters.append(DuplicateFilter(config.duplicate, seed_keys))
    if config.near_duplicate.enabled:
        filters.append(NearDuplicateFilter(config.near_duplicate, seed_keys))
    if config.judge.enabled:
        if grader is None:
            raise InvalidArgument("validation.judge is enabled but no judge is reachable (the generator's "
                                  "Complete RPC); disable it or configure the generator peer")
        filters.append(JudgeFilter(config.judge, spec, grader))
    return filters


def _later_hard_filters(filters: list[Filter]) -> dict[str, list[Filter]]:
    """soft reason → the hard filters after it in the chain: a row that reason stopped never met
    them, and must pass them before the label floor may accept it."""
    return {check.reason: [later for later in filters[index + 1:] if later.reason not in SOFT_REASONS]
            for index, check in enumerate(filters) if check.reason in SOFT_REASONS}


def _kept_by_cap(labels: list[str | None], cap: int) -> bytearray:
    """1 for each candidate the balance cap keeps: the first ``cap`` of each label, in file order."""
    kept = bytearray(len(labels))
    counts: Counter = Counter()
    for index, label in enumerate(labels):
        if label is None or counts[label] < cap:
            counts[label] += 1
            kept[index] = 1
    return kept


def _batches(rows: Iterator[Row | Malformed], size: int) -> Iterator[list[Row | Malformed]]:
    batch: list[Row | Malformed] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _rejected_line(row: Row | Malformed) -> str:
    if isinstance(row, Malformed):
        return dumps({"line": row.line, "reason": "malformed", "detail": row.detail, "raw": row.raw}) + "\n"
    return dumps({"line": row.line, "reason": row.reason, "detail": row.detail, "example": row.example()}) + "\n"


def _finish(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


@dataclass
class Candidates:
    """The rows that passed every filter, in file order: their text waits in a temporary file, and
    what the balance pass needs about each is kept in compact arrays."""

    path: Path
    labels: list[str | None] = field(default_factory=list)
    lines: array = field(default_factory=lambda: array("q"))
    counts: Counter = field(default_factory=Counter)

    def add(self, label: str | None, line: int) -> None:
        self.labels.append(label)
        self.lines.append(line)
        self.counts[label] += 1


@dataclass
class BalanceCap:
    """What the label-balance pass decided: at most ``cap`` rows per label (None: no cap) and,
    per candidate, whether the cap keeps it."""

    cap: int | None = None
    share: float = 0.0
    kept: bytearray | None = None

    def keeps(self, index: int) -> bool:
        return self.kept is None or bool(self.kept[index])

    def detail(self, label: str | None) -> str:
        return f'label "{label}" is over its cap of {self.cap} rows (max_share {self.share:.3f})'


class ValidationRun:
    """One validation, as its steps: the filter pass, the balance cap, the label floor's reserve
    and rescue, accepted.jsonl in file order, the report. Each step reads what the one before
    left in ``self``; ``run`` calls them in order."""

    def __init__(self, spec: TaskSpec, config: ValidatorConfig, filters: list[Filter], out_dir: Path,
                 progress: Progress | None = None, check_cancelled: Callable[[], None] | None = None) -> None:
        self.spec = spec
        self.config = config
        self.filters = filters
        self.progress = progress
        self.check_cancelled = check_cancelled
        self.report = Report()
        self.paths = {name: out_dir / f"{name}.tmp" for name in (ACCEPTED, REJECTED, REPORT)}
        self.candidates = Candidates(out_dir / "candidates.jsonl.tmp")
        self._interned: dict[str, str] = {}
        # Classification: soft-rejected rows wait in a bounded reserve for labels left too thin.
        self.floor: LabelFloor | None = None
        if spec.type == "classification" and spec.labels:
            self.report.declare_labels(spec.labels)
            self.floor = LabelFloor(config.label_floor, spec.labels)
        self.later_hard = _later_hard_filters(filters)
        self.rejected: Any = None  # rejected.jsonl.tmp, open while the run lasts

    # ----- bookkeeping shared by the steps ----------------------------------------------------
    def reject(self, row: Row | Malformed, label: str | None, out: list[str]) -> None:
        self.report.count_rejected(label, "malformed" if isinstance(row, Malformed) else str(row.reason))
        out.append(_rejected_line(row))

    def reserve(self, row: Row, label: str, out: list[str]) -> None:
        assert self.floor is not None
        dropped = self.floor.offer(row, label)
        if dropped is not None:
            self.reject(dropped, label, out)

    def _label(self, row: Row) -> str | None:
        label = label_of(self.spec, row)
        return None if label is None else self._interned.setdefault(label, label)

    # ----- the steps ------------------------------------------------------------------------
    def filter_rows(self, examples: Path) -> None:
        """Pass 1: every row through the filter chain, a batch at a time; survivors go to the
        candidates file, soft rejects of classification labels to the floor's reserve, the rest to
        rejected.jsonl."""
        total_lines = count_lines(examples)
        done = 0
        with open(self.candidates.path, "w", encoding="utf-8") as candidates:
            for batch in _batches(read_rows(examples), self.config.batch_size):
                if self.check_cancelled is not None:
                    self.check_cancelled()
                rows = [r for r in batch if isinstance(r, Row)]
                for check in self.filters:
                    live = [r for r in rows if r.reason is None]
                    if not live:
                        break
                    check.apply(live)
                out_rejected: list[str] = []
                out_candidates: list[str] = []
                for row in batch:
                    self._sort_row(row, out_candidates, out_rejected)
                self.rejected.writelines(out_rejected)
                candidates.writelines(out_candidates)
                done = max(done, batch[-1].line)
                if self.progress is not None:
                    self.progress(done, total_lines, {"read": self.report.read, "rejected": self.report.rejected,
                                                      "candidates": len(self.candidates.labels)})
            candidates.flush()
            os.fsync(candidates.fileno())

    def _sort_row(self, row: Row | Malformed, out_candidates: list[str], out_rejected: list[str]) -> None:
        if isinstance(row, Malformed):
            self.report.count_read(None)
            self.reject(row, None, out_rejected)
            return
        label = self._label(row)
        self.report.count_read(label)
        if row.reason is None:
            out_candidates.append(dumps(row.example()) + "\n")
            self.candidates.add(label, row.line)
        elif self.floor is not None and label is not None and self.floor.takes(label, row.reason):
            self.reserve(row, label, out_rejected)
        else:
            self.reject(row, label, out_rejected)

    def balance(self) -> BalanceCap:
        """Pass 2 decides the label-balance cap from the final label counts; which candidates it
        keeps (the first ones of each label) follows from the labels alone."""
        counts = self.candidates.counts
        if not (self.config.label_balance.enabled and self.spec.type == "classification" and counts):
            return BalanceCap()
        share = self.config.label_balance.max_share or auto_share(len(self.spec.labels))
        cap = balance_cap({k: v for k, v in counts.items() if k is not None}, share)
        if cap is None:
            return BalanceCap(share=share)
        self.report.notes.append(f"label_balance: max_share {share:.3f}; at most {cap} row(s) kept per label")
        if cap == 0:
            self.report.notes.append("label_balance: max_share is below 1 / (labels present); every row was "
                                     "rejected — raise validation.label_balance.max_share")
        return BalanceCap(cap, share, _kept_by_cap(self.candidates.labels, cap))

    def accepted_counts(self, balance: BalanceCap) -> Counter:
        if balance.kept is None:
            return self.candidates.counts
        return Counter(label for label, keep in zip(self.candidates.labels, balance.kept) if keep)

    def reserve_capped(self, balance: BalanceCap, accepted_counts: Counter) -> set[str | None]:
        """Rows the cap drops from a label the floor must top up go to its reserve first; returns
        the labels whose capped rows the floor has taken (settled here, not rejected later)."""
        floor, candidates = self.floor, self.candidates
        if floor is None or balance.kept is None:
            return set()
        needy = {label for label in candidates.counts if floor.needs(label, accepted_counts[label])}
        if not any(candidates.counts[label] > accepted_counts[label] for label in needy):
            return set()
        out_rejected: list[str] = []
        with open(candidates.path, encoding="utf-8") as source:
            for text, label, line, keep in zip(source, candidates.labels, candidates.lines, balance.kept):
                if not keep and label in needy:
                    row = parse_row(line, text.encode("utf-8"))
                    assert isinstance(row, Row)  # the validator wrote it
                    row.reject("label_imbalance", balance.detail(label))
                    self.reserve(row, label, out_rejected)
        self.rejected.writelines(out_rejected)
        return needy

    def rescue(self, accepted_counts: Counter) -> list[Row]:
        """The label floor gives thin labels back their best reserved rows (each must still pass
        the hard filters it never met); the reserve's leftovers are rejected."""
        if self.floor is None:
            return []

        def admit(row: Row, reason: str) -> None:
            for check in self.later_hard.get(reason, ()):
                check.apply([row])
                if row.reason is not None:
                    return

        rescued, dropped = self.floor.rescue(accepted_counts, admit)
        out_rejected: list[str] = []
        for row in dropped:
            self.reject(row, label_of(self.spec, row), out_rejected)
        self.rejected.writelines(out_rejected)
        self.report.thin_labels = list(self.floor.thin)
        return rescued

    def write_accepted(self, balance: BalanceCap, settled: set[str | None], rescued: list[Row]) -> None:
        """accepted.jsonl in file order: the kept candidates with the rescued rows merged in (the
        candidates file itself when nothing was capped or rescued)."""
        candidates, report = self.candidates, self.report
        if balance.kept is None and not rescued:
            for label in candidates.labels:
                report.count_accepted(label)
            os.replace(candidates.path, self.paths[ACCEPTED])
            return
        pending = iter(rescued)
        waiting = next(pending, None)
        with open(candidates.path, encoding="utf-8") as source, \
                open(self.paths[ACCEPTED], "w", encoding="utf-8") as accepted:

            def write_rescued_before(line: int) -> None:
                nonlocal waiting
                while waiting is not None and waiting.line < line:
                    label = label_of(self.spec, waiting)
                    accepted.write(dumps(waiting.example()) + "\n")
                    report.count_accepted(label)
                    report.count_rescued(label)
                    waiting = next(pending, None)

            for index, (text, label, line) in enumerate(zip(source, candidates.labels, candidates.lines)):
                write_rescued_before(line)
                if balance.keeps(index):
                    accepted.write(text)
                    report.count_accepted(label)
                elif label not in settled:
                    report.count_rejected(label, "label_imbalance")
                    self.rejected.write(dumps({"line": line, "reason": "label_imbalance",
                                               "detail": balance.detail(label),
                                               "example": json.loads(text)}) + "\n")
            write_rescued_before(_PAST_THE_END)
            accepted.flush()
            os.fsync(accepted.fileno())
        candidates.path.unlink()

    def write_report(self, seconds: float) -> dict[str, Any]:
        report = self.report
        report.check()
        for check in self.filters:
            report.notes.extend(check.notes())
        if self.floor is not None:
            report.notes.extend(self.floor.notes(report.by_label))
        tokenizer = next((f.counter.name for f in self.filters if isinstance(f, LengthFilter)), "")
        data = report.to_dict(task=self.spec.name, config=self.config.to_dict(), seconds=seconds,
                              tokenizer=tokenizer)
        self.paths[REPORT].write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n",
                                      encoding="utf-8")
        return data

    def run(self, examples: Path) -> ValidationOutcome:
        started = time.perf_counter()
        self.rejected = open(self.paths[REJECTED], "w", encoding="utf-8")
        try:
            self.filter_rows(examples)
            balance = self.balance()
            accepted_counts = self.accepted_counts(balance)
            settled = self.reserve_capped(balance, accepted_counts)
            rescued = self.rescue(accepted_counts)
            self.write_accepted(balance, settled, rescued)
            _finish(self.rejected)
        except BaseException:
            self.rejected.close()
            raise
        data = self.write_report(time.perf_counter() - started)
        final = {name: tmp.with_suffix("") for name, tmp in self.paths.items()}
        for name, tmp in self.paths.items():
            os.replace(tmp, final[name])
        return ValidationOutcome(final[ACCEPTED], final[REJECTED], final[REPORT], data)


def validate(spec: TaskSpec, examples: Path, out_dir: Path, config: ValidatorConfig, *,
             seeds: Path | None = None, test: Path | None = None, predictions: Path | None = None,
             token_counter: TokenCounter | None = None, model_cache: Path | None = None,
             references: ModelReferences | None = None,
             grader: Grader | None = None, progress: Progress | None = None,
             check_cancelled: Callable[[], None] | None = None) -> ValidationOutcome:
    """Validate ``examples`` (JSONL) into ``out_dir``/{accepted,rejected}.jsonl and report.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    filters = build_filters(spec, config, read_references(seeds, "seeds.jsonl"), read_references(test, "test.jsonl"),
                            token_counter=token_counter, model_cache=model_cache, references=references,
                            grader=grader, predictions=predictions)
    return ValidationRun(spec, config, filters, out_dir, progress, check_cancelled).run(examples)
