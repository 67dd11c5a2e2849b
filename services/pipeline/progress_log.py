"""Progress for logs: where stdout is not a terminal (CI, ``nohup``, a file), a live bar prints
nothing useful, so the CLI writes plain lines instead — one at each stage transition and one every
``interval`` seconds while a stage runs (rows written, step and loss, examples scored: whatever the
stage's worker reports)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

# Counters worth a place on a progress line, per stage's worker (the rest stays in GetJob).
SHOWN_COUNTERS = ("loss", "eval_loss", "tokens_per_second", "rejected", "estimated_cost_usd")


@dataclass
class LineProgress:
    """Feed it each operation metadata update (``update``); it decides when to print a line."""

    stages: Sequence[str]
    out: TextIO
    interval: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _stage: int = -1
    _last_line: float = field(default=-1e18)

    def _print(self, text: str) -> None:
        self.out.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.out.flush()

    def update(self, message: str, counters: dict[str, float]) -> None:
        index = int(counters.get("stage_index", -1))
        now = self.clock()
        if 0 <= index < len(self.stages) and index != self._stage:
            if self._stage >= 0:
                self._print(f"stage {self._stage + 1}/{len(self.stages)} {self.stages[self._stage]}: finished")
            self._stage = index
            self._print(f"stage {index + 1}/{len(self.stages)} {self.stages[index]}: started")
            self._last_line = now
            return
        if self._stage >= 0 and now - self._last_line >= self.interval:
            self._print(f"stage {self._stage + 1}/{len(self.stages)} {self.stages[self._stage]}: "
                        f"{self.describe(message, counters, self.stages[self._stage])}")
            self._last_line = now

    @staticmethod
    def describe(message: str, counters: dict[str, float], stage: str = "") -> str:
        """The message and the counters of ``stage`` (keys ``stage.name``; the job's metadata keeps
        the earlier stages' counters too, which would repeat on every later line)."""
        done, total = counters.get("stage_done", 0), counters.get("stage_total", 0)
        # The line already names the stage; workers' messages often start with it too.
        text = message.strip().removeprefix(f"{stage}: ") if stage else message.strip()
        parts = [text or f"{done:g}/{total:g}"]
        for key, value in sorted(counters.items()):
            prefix, _, name = key.rpartition(".")
            if name == "estimated_cost_usd" and not value:
                continue  # a local teacher costs nothing: not worth a place on every line
            if name in SHOWN_COUNTERS and (not prefix or not stage or prefix == stage):
                parts.append(f"{name} {value:.4g}")
        return ", ".join(parts)

    def finish(self, state: str, stage_states: dict[str, str]) -> None:
        """The end of the job: the stages not yet reported as done, then the job's state."""
        for index in range(max(self._stage, 0), len(self.stages)):  # the last one seen, and any after it
            name = self.stages[index]
            status = stage_states.get(name, "")
            if status:
                self._print(f"stage {index + 1}/{len(self.stages)} {name}: {status}")
        self._print(f"job {state}")


def plain_stage_state(state: Any) -> str:
    """STAGE_STATE_SUCCEEDED → "done", STAGE_STATE_SKIPPED → "skipped", …"""
    name = str(state).removeprefix("STAGE_STATE_").lower()
    return {"succeeded": "done"}.get(name, name)
