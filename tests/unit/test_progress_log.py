"""Plain progress lines for logs (no terminal): one per stage transition, one per interval while a
stage runs, with the worker's counters, and the job's end."""

from __future__ import annotations

import io

from services.pipeline.progress_log import LineProgress, plain_stage_state
from services.pipeline.stages import STAGES


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_at_transitions_and_every_interval() -> None:
    out, clock = io.StringIO(), Clock()
    lines = LineProgress(STAGES, out, interval=30.0, clock=clock)
    lines.update("generate: starting teacher", {"stage_index": 1})
    for second in range(1, 70):  # updates every second; a line only every 30 s
        clock.now = second
        lines.update(f"generate: generating {second}/200 examples", {"stage_index": 1, "stage_done": second,
                                                                     "stage_total": 200, "generate.rejected": 3,
                                                                     "generate.estimated_cost_usd": 0.0})
    clock.now = 71
    lines.update("validate: 0/200", {"stage_index": 2})
    clock.now = 72
    lines.update("train: epoch 1/2 4/40 steps", {"stage_index": 3, "train.loss": 1.2345})
    clock.now = 120
    # The job's metadata still holds the generator's counters: they are not the train stage's.
    lines.update("train: epoch 1/2 9/40 steps", {"stage_index": 3, "train.loss": 0.5, "generate.rejected": 3,
                                                 "generate.tokens_per_second": 496.0})
    lines.finish("SUCCEEDED", {"train": "done", "train_seed_only": "done", "evaluate": "done", "export": "skipped"})
    text = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert text[0] == "stage 2/8 generate: started"
    assert text[1] == "stage 2/8 generate: generating 30/200 examples, rejected 3"
    assert text[2] == "stage 2/8 generate: generating 60/200 examples, rejected 3"
    assert text[3:6] == ["stage 2/8 generate: finished", "stage 3/8 validate: started", "stage 3/8 validate: finished"]
    assert text[6] == "stage 4/8 train: started"
    assert text[7] == "stage 4/8 train: epoch 1/2 9/40 steps, loss 0.5"
    assert text[8:] == ["stage 4/8 train: done", "stage 5/8 train_seed_only: done", "stage 6/8 evaluate: done",
                        "stage 7/8 export: skipped", "job SUCCEEDED"]


def test_stage_state_names() -> None:
    assert plain_stage_state("STAGE_STATE_SUCCEEDED") == "done"
    assert plain_stage_state("STAGE_STATE_SKIPPED") == "skipped"
    assert plain_stage_state("STAGE_STATE_FAILED") == "failed"


def test_a_priced_teacher_shows_its_cost_and_the_stage_is_named_once() -> None:
    line = LineProgress.describe("generate: generating 10/50 examples",
                                 {"generate.estimated_cost_usd": 0.0123, "generate.rejected": 0}, "generate")
    assert line == "generating 10/50 examples, estimated_cost_usd 0.0123, rejected 0"
