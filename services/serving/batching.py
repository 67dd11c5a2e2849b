"""Dynamic batching: requests that arrive within a few milliseconds of each other run as one
padded batch, which costs little more than one of them on a CPU (the weights are read once)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any

from services.common.errors import ResourceExhausted, Unavailable

log = logging.getLogger(__name__)


class DynamicBatcher:
    """Collects submitted items into batches of at most ``max_batch`` items, waiting at most
    ``max_wait_ms`` after the first one, and runs ``run_batch(items) -> results`` (one result per
    item, same order) on one worker thread. Items with different ``key(item)`` never share a batch.

    The queue is bounded by ``max_queue`` waiting items: past it ``submit`` raises
    ResourceExhausted at once (RESOURCE_EXHAUSTED on gRPC, 429 on HTTP) instead of letting latency
    and memory grow without limit under overload; clients back off and retry."""

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], max_batch: int = 8, max_wait_ms: float = 5.0,
                 key: Callable[[Any], Hashable] = lambda item: item[-1] if isinstance(item, tuple) else None,
                 name: str = "batcher", max_queue: int = 256) -> None:
        self.run_batch, self.max_batch, self.max_wait = run_batch, max(1, max_batch), max_wait_ms / 1000.0
        self.key = key
        self.name = name
        self.max_queue = max(1, max_queue)
        # One slot more than max_queue: close() always has room for its stop marker.
        self._queue: queue.Queue[tuple[Any, Future] | None] = queue.Queue(self.max_queue + 1)
        self._waiting = threading.Semaphore(self.max_queue)  # queued + running items
        self._closed = False
        self.batches = 0
        self.items = 0
        self._thread = threading.Thread(target=self._loop, name=f"batch-{name}", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> Future:
        future: Future = Future()
        if self._closed:
            future.set_exception(Unavailable("the model was unloaded while this request waited; retry"))
            return future
        if not self._waiting.acquire(blocking=False):
            raise ResourceExhausted(f"model {self.name}: {self.max_queue} requests are already queued or running; "
                                    "retry after a short back-off (DISTILLERY_SERVING_MAX_QUEUE raises the limit)")
        future.add_done_callback(lambda _: self._waiting.release())
        self._queue.put((item, future))
        return future

    def _loop(self) -> None:
        held: list[tuple[Any, Future]] = []
        while True:
            first = held.pop(0) if held else self._queue.get()
            if first is None:
                break
            batch, key = [first], self.key(first[0])
            deadline = time.monotonic() + self.max_wait
            stop = False
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    entry = self._queue.get(timeout=max(0.0, left)) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    stop = True
                    break
                if self.key(entry[0]) == key:
                    batch.append(entry)
                else:
                    held.append(entry)
            self._run(batch)
            if stop:
                break
        for _item, future in held:
            future.set_exception(Unavailable("the model was unloaded while this request waited; retry"))
        self._drain()

    def _run(self, batch: list[tuple[Any, Future]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = self.run_batch([item for item, _ in batch])
        except BaseException as exc:  # every waiter gets the error, the worker survives
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            future.set_result(result)

    def _drain(self) -> None:
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            if entry is not None:
                entry[1].set_exception(Unavailable("the model was unloaded while this request waited; retry"))

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=60)
