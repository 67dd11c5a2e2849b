"""Many concurrent clients against one served model, for the soak tests: every failure is collected
and returned instead of raised, so a test can assert "zero errors" and show the first few."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def hammer(call: Callable[[int, int], None], clients: int, seconds: float | None = None,
           requests_each: int = 1) -> tuple[int, list[str]]:
    """Run ``clients`` threads; thread ``i`` calls ``call(i, n)`` for n = 0, 1, … until ``seconds``
    have passed (at least once each) or, without ``seconds``, exactly ``requests_each`` times.
    ``call`` raises (an RPC error, a failed assert on the answer) to count an error.
    Returns (calls made, error reprs)."""
    errors: list[str] = []
    calls = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds if seconds is not None else None

    def worker(i: int) -> None:
        n = 0
        while (n < requests_each) if deadline is None else (n == 0 or time.monotonic() < deadline):
            try:
                call(i, n)
            except Exception as exc:  # noqa: BLE001 — counted and reported by the caller
                with lock:
                    errors.append(repr(exc)[:300])
            n += 1
            with lock:
                calls[0] += 1

    threads = [threading.Thread(target=worker, args=(i,), name=f"client-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return calls[0], errors
