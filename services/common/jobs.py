"""Runs long-running operations in background threads, persists their progress, and resumes the
unfinished ones when a service restarts (distilabel-style: each handler picks up from what it had
already written into its operation's work directory).

Every run holds a lease on its operation (services.common.operations). On a store that several
replicas share (PostgreSQL) a heartbeat renews the leases of this replica's runs and claims the
operations whose lease ran out — a replica that died — so another replica resumes them; a run
whose lease was taken stops, and its writes are refused. One process alone on its store (SQLite)
takes back, at start, whatever its dead predecessor held."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common.artifacts import ArtifactStore
from services.common.errors import Cancelled, DistilleryError, InvalidArgument, LeaseLost
from services.common.operations import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    OperationRecord,
    OperationStore,
)

log = logging.getLogger(__name__)

Handler = Callable[["OperationContext"], dict[str, Any]]


class OperationContext:
    """What a handler sees: its request, a private work directory that survives restarts, the
    artifact store, progress reporting and cooperative cancellation."""

    def __init__(self, record: OperationRecord, runner: JobRunner, cancel_event: threading.Event) -> None:
        self.record = record
        self.name = record.name
        self.request = record.request
        self.store = runner.store
        self.work_dir = runner.work_root / record.short_id
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._runner = runner
        self._cancel_event = cancel_event
        self._metadata: dict[str, Any] = dict(record.metadata)
        self._samples: deque[tuple[float, float]] = deque(maxlen=30)
        self._last_write = 0.0
        self._last_cancel_poll = 0.0

    @property
    def resumed(self) -> bool:
        """True when this operation had started before (the service restarted mid-job)."""
        return bool(self.record.metadata.get("started"))

    def output_key(self, filename: str) -> str:
        """Store key for an output: the request's output_prefix, or the operation's folder."""
        prefix = str(self.request.get("output_prefix") or f"operations/{self.record.service}/{self.record.short_id}")
        return f"{prefix.rstrip('/')}/{filename}"

    def progress(self, *, done: float | None = None, total: float | None = None, stage: str | None = None,
                 unit: str | None = None, message: str | None = None, counters: dict[str, float] | None = None,
                 force: bool = False) -> None:
        """Record progress. Rate and ETA are derived from recent ``done`` samples; writes to the
        database are throttled so a tight loop can call this freely."""
        now = time.time()
        meta = self._metadata
        if stage is not None:
            meta["stage"] = stage
        if unit is not None:
            meta["unit"] = unit
        if message is not None:
            meta["message"] = message
        if total is not None:
            meta["total"] = int(total)
        if counters:
            merged = dict(meta.get("counters", {}))
            merged.update({k: float(v) for k, v in counters.items()})
            meta["counters"] = merged
        if done is not None:
            meta["done"] = int(done)
            self._samples.append((now, float(done)))
            if len(self._samples) >= 2:
                (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
                rate = (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0
                meta["rate"] = round(rate, 4)
                remaining = float(meta.get("total", 0)) - d1
                meta["eta_seconds"] = round(remaining / rate, 1) if rate > 0 and remaining > 0 else 0.0
        if force or now - self._last_write >= 0.5:
            self._last_write = now
            self._runner._write_metadata(self.name, meta)

    def cancelled(self) -> bool:
        if self._cancel_event.is_set():
            return True
        now = time.time()
        if now - self._last_cancel_poll > 1.0:  # another process (CLI, other replica) may have asked
            self._last_cancel_poll = now
            if self._runner.ops.get(self.name).cancel_requested:
                self._cancel_event.set()
        return self._cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise Cancelled(f"operation {self.name} was cancelled")


@dataclass
class _Running:
    thread_started: float
    cancel: threading.Event
    lost: bool = False  # another replica took the lease: stop, write nothing more

DEFAULT_LEASE_SECONDS = 30.0


class JobRunner:
    """One per service process. ``submit`` is idempotent on request_id; work is queued on a
    small pool (default one job at a time: these jobs saturate the machine)."""

    def __init__(self, service: str, ops: OperationStore, store: ArtifactStore, home: Path,
                 max_concurrent: int = 1, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.service = service
        # This process, as the owner its leases name (unique even when a pod restarts with the same host name).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self._max_concurrent = max_concurrent
        self.ops = ops
        self.store = store
        self.work_root = home / "work" / service
        self.work_root.mkdir(parents=True, exist_ok=True)
        self._handlers: dict[str, Handler] = {}
        # Checks a handler's result against its kind's result message before it is stored (set by
        # the service's edge, which knows the protobuf types): a misspelt field fails the job
        # loudly instead of vanishing when the result is packed.
        self.result_check: Callable[[str, dict[str, Any]], None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix=f"{service}-job")
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._closed = False
        self._heartbeat: threading.Thread | None = None
        self._stop_heartbeat = threading.Event()

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def submit(self, kind: str, request: dict[str, Any], request_id: str | None = None) -> OperationRecord:
        """Start a job. The same request_id returns the same operation (idempotent start); if
        that operation failed or was cancelled, it is retried in place and resumes from what it
        had written, which is how "fix the cause, rerun the same command" works."""
        if kind not in self._handlers:
            raise InvalidArgument(f"{self.service} cannot run {kind!r} jobs")
        record, created = self.ops.create(self.service, kind, request, request_id)
        if created:
            self._schedule(record)
        elif record.state in (FAILED, CANCELLED):
            record = self.retry(record.name)
        return record

    def retry(self, name: str) -> OperationRecord:
        """Run a failed or cancelled operation again (same name, same work directory)."""
        record = self.ops.get(name)
        if record.state not in (FAILED, CANCELLED):
            return record
        with self._lock:
            if name in self._running:
                return record
        meta = dict(record.metadata)
        meta.update({"state": PENDING, "retries": int(meta.get("retries", 0)) + 1})
        record = self.ops.update(name, state=PENDING, error_code=None, error_message=None, cancel_requested=0,
                                 metadata=meta)
        self._schedule(record)
        return record

    def busy(self) -> bool:
        """Every slot of this replica (``max_concurrent``) runs a job."""
        with self._lock:
            return len(self._running) >= self._max_concurrent

    @property
    def shared(self) -> bool:
        """Whether other replicas may share this store (then leases decide who runs what)."""
        return self.ops.shared

    def resume_unfinished(self) -> list[str]:
        """Reschedule the operations of this service that no one is running: on a store of its
        own, all its unfinished ones (this process is the only one); on a shared store, those
        whose lease ran out. On a shared store a heartbeat keeps doing this (``start_heartbeat``)."""
        records = (self.ops.claimable(self.service) if self.shared
                   else self.ops.list(service=self.service, states=frozenset({PENDING, RUNNING}), limit=10_000))
        resumed = []
        for record in records:
            if self.shared and self.busy():
                break  # the rest wait for a replica with a free slot
            if record.kind not in self._handlers:
                continue
            with self._lock:
                if record.name in self._running:
                    continue
            if not self.ops.claim(record.name, self.owner, self.lease_seconds, force=not self.shared):
                continue  # another replica claimed it first
            if record.cancel_requested:
                self._finish(record.name, state=CANCELLED, error_code="CANCELLED",
                             error_message="cancelled while no replica was running it")
                continue
            log.info("resuming operation %s (%s)", record.name, record.state)
            self._schedule(record, claimed=True)
            resumed.append(record.name)
        if self.shared:
            self.start_heartbeat()
        return resumed

    def start_heartbeat(self) -> None:
        """Renew this replica's leases every lease/3 seconds and take over expired ones."""
        if self._heartbeat is not None or not self.shared:
            return
        self._heartbeat = threading.Thread(target=self._beat, name=f"{self.service}-leases", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        interval = max(0.2, self.lease_seconds / 3)
        while not self._stop_heartbeat.wait(interval):
            try:
                self.renew_leases()
                if not self.busy():
                    self.resume_unfinished()
            except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                log.warning("lease heartbeat of %s failed", self.service, exc_info=True)

    def renew_leases(self) -> None:
        """Extend the lease of every run of this replica; a run whose lease another replica took
        is told to stop (its further writes are refused anyway)."""
        with self._lock:
            running = list(self._running.items())
        for name, run in running:
            if not run.lost and not self.ops.renew(name, self.owner, self.lease_seconds):
                self._stop_lost_run(name, run)

    @staticmethod
    def _stop_lost_run(name: str, run: _Running) -> None:
        log.warning("lost the lease of %s to another replica: stopping this run", name)
        run.lost = True
        run.cancel.set()

    def _schedule(self, record: OperationRecord, claimed: bool = False) -> None:
        if not claimed and self.shared and self.busy():
            # On a shared store the database is the work queue: a replica that is full leaves a
            # new operation unclaimed, and the first replica with a free slot takes it on its
            # next heartbeat (this one's included). Claiming it here would queue it behind this
            # replica's running jobs while others idle — e.g. every shard of one generation.
            log.info("operation %s waits for a free replica (this one runs %d)", record.name, len(self._running))
            return
        if not claimed and not self.ops.claim(record.name, self.owner, self.lease_seconds, force=not self.shared):
            log.info("operation %s is held by another replica; it runs there", record.name)
            return
        event = threading.Event()
        with self._lock:
            self._running[record.name] = _Running(time.time(), event)
        self._pool.submit(self._run, record.name, event)

    def _run(self, name: str, cancel_event: threading.Event) -> None:
        record = self.ops.get(name)
        try:
            if record.cancel_requested:
                raise Cancelled(f"operation {name} was cancelled before it started")
            ctx = OperationContext(record, self, cancel_event)
            meta = dict(record.metadata)
            meta.update({"state": RUNNING, "service": self.service, "replica": self.owner})
            was_started = bool(record.metadata.get("started"))
            meta["started"] = True
            if was_started:
                meta["resumes"] = int(meta.get("resumes", 0)) + 1
            self.ops.update(name, held_by=self.owner, state=RUNNING, metadata=meta)
            ctx._metadata = meta
            ctx.record = record  # keeps `resumed` reflecting the state before this run
            result = self._handlers[record.kind](ctx)
            if self.result_check is not None:
                self.result_check(record.kind, result)
            ctx._metadata["state"] = SUCCEEDED
            self._finish(name, state=SUCCEEDED, result=result, metadata=ctx._metadata)
        except LeaseLost as exc:
            log.warning("%s: %s; its writes stop here", name, exc)
        except Cancelled as exc:
            self._finish_error(name, CANCELLED, "CANCELLED", str(exc))
        except DistilleryError as exc:
            self._finish_error(name, FAILED, exc.code, str(exc))
        except Exception as exc:  # a bug: keep the trace in the log, give the client a clean message
            log.error("operation %s crashed:\n%s", name, traceback.format_exc())
            self._finish_error(name, FAILED, "INTERNAL", f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.pop(name, None)
            self._notify()

    def _lost(self, name: str) -> bool:
        with self._lock:
            run = self._running.get(name)
        return run is not None and run.lost

    def _finish(self, name: str, **fields: Any) -> None:
        """The last write of a run (held by this replica), giving the lease up in the same write."""
        try:
            self.ops.update(name, held_by=self.owner, owner=None, lease_until=None, **fields)
        except LeaseLost as exc:
            log.warning("%s: %s; this replica's outcome is dropped", name, exc)

    def _finish_error(self, name: str, state: str, code: str, message: str) -> None:
        record = self.ops.get(name)
        if self._lost(name) or record.owner != self.owner:
            return  # another replica runs it now: its outcome is that replica's to write
        if self._closed and not record.cancel_requested:
            # The process is going down: leave it RUNNING so the next start (or, on a shared store,
            # another replica at once) resumes it.
            self.ops.release(name, self.owner)
            return
        meta = dict(record.metadata)
        meta["state"] = state
        self._finish(name, state=state, error_code=code, error_message=message, metadata=meta)

    def _write_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        if self._lost(name):
            return
        try:
            self.ops.update(name, held_by=self.owner, metadata=dict(metadata))
        except LeaseLost:
            with self._lock:
                run = self._running.get(name)
            if run is not None:
                self._stop_lost_run(name, run)
            return
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def cancel(self, name: str) -> OperationRecord:
        record = self.ops.request_cancel(name)
        with self._lock:
            running = self._running.get(name)
        if running:
            running.cancel.set()
        elif not record.done and record.state == PENDING:
            pass  # queued: _run sees cancel_requested and stops before starting
        self._notify()
        return self.ops.get(name)

    def wait(self, name: str, timeout: float | None = None) -> OperationRecord:
        """Block until the operation is done or ``timeout`` seconds pass; return its record."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            record = self.ops.get(name)
            if record.done:
                return record
            remaining = None if deadline is None else deadline - time.time()
            if remaining is not None and remaining <= 0:
                return record
            with self._changed:
                self._changed.wait(timeout=min(1.0, remaining) if remaining is not None else 1.0)

    def watch(self, name: str, interval: float = 0.5, timeout: float | None = None):
        """Yield the record whenever it changes, and a last time when it is done."""
        last: tuple[Any, ...] | None = None
        deadline = None if timeout is None else time.time() + timeout
        while True:
            record = self.ops.get(name)
            key = (record.state, record.update_time)
            if key != last:
                last = key
                yield record
            if record.done:
                return
            if deadline is not None and time.time() > deadline:
                return
            with self._changed:
                self._changed.wait(timeout=max(0.05, interval))

    def shutdown(self, wait: bool = False) -> None:
        """Stop: running handlers are told to stop; their operations stay RUNNING so that the
        next start of the service resumes them."""
        self._closed = True
        self._stop_heartbeat.set()
        with self._lock:
            for running in self._running.values():
                running.cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
