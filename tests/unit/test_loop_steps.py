"""The steps the two long functions were split into, each on its own: the training loop's
progress record (early stopping on the eval loss, "until the training loss stops falling",
the checkpoint round trip) and the validation run's balance and write steps."""

from __future__ import annotations

import json
from pathlib import Path

from services.trainer.config import TrainingConfig
from services.trainer.loop import LoopState
from services.validator.config import build_config
from services.validator.pipeline import BalanceCap, ValidationRun
from tests.unit.test_validator_pipeline import SPEC


def _epoch_losses(state: LoopState, epoch: int, *losses: float) -> None:
    for loss in losses:
        state.history.append({"step": len(state.history) + 1, "epoch": epoch, "loss": loss})


def test_eval_loss_early_stopping_waits_for_patience() -> None:
    config = TrainingConfig(early_stopping_patience=2, early_stopping_min_delta=0.01)
    state = LoopState("f")
    for epoch, value in enumerate([1.0, 0.8, 0.795, 0.9], start=1):
        state.epoch = epoch
        state.record_eval_loss(value, config)
        if epoch < 4:
            assert not state.stopped_early, epoch
    assert state.best_eval == 0.8
    assert state.stopped_early and state.stop_reason == "eval loss stopped improving"


def test_eval_loss_early_stopping_off_with_zero_patience() -> None:
    state = LoopState("f")
    for value in [1.0, 2.0, 3.0, 4.0]:
        state.record_eval_loss(value, TrainingConfig(early_stopping_patience=0))
    assert not state.stopped_early and state.best_eval is None


def test_training_loss_plateau_stops_after_patience_flat_epochs() -> None:
    config = TrainingConfig(train_loss_patience=2, train_loss_min_improvement=0.05)
    state = LoopState("f")
    _epoch_losses(state, 0, 2.0, 1.8)      # mean 1.9: the first best
    state.record_epoch_train_loss(0, config)
    _epoch_losses(state, 1, 1.0, 0.9)      # 0.95: a real improvement
    state.record_epoch_train_loss(1, config)
    _epoch_losses(state, 2, 0.93, 0.92)    # 0.925: < 5 % better, flat 1
    state.record_epoch_train_loss(2, config)
    assert not state.stopped_early and state.flat_epochs == 1
    _epoch_losses(state, 3, 0.94, 0.93)    # flat 2 = patience
    state.record_epoch_train_loss(3, config)
    assert state.stopped_early and state.stop_reason == "training loss stopped falling"
    assert state.best_train == 0.95


def test_state_round_trips_through_a_checkpoint_payload() -> None:
    state = LoopState("abc", step=7, epoch=1, group=3, history=[{"step": 7, "epoch": 1, "loss": 0.5}],
                      resumed_from=[4])
    payload = json.loads(json.dumps(state.to_dict()))
    payload["scheduler"] = {"last_epoch": 7}  # stored beside the state; not part of it
    restored = LoopState.from_dict(payload)
    assert restored == state


def _run(tmp_path: Path, overrides: dict) -> ValidationRun:
    # the balance step reads only the candidates' labels: no filter chain is needed for it
    return ValidationRun(SPEC, build_config({}, overrides), [], tmp_path)


def test_balance_caps_the_first_rows_of_the_largest_label(tmp_path: Path) -> None:
    run = _run(tmp_path, {"label_balance": {"enabled": True, "max_share": 0.5}})
    for line, label in enumerate(["card"] * 6 + ["transfer"] * 2 + ["balance"] * 2, start=1):
        run.candidates.add(label, line)
    balance = run.balance()
    assert balance.cap == 4  # k <= 0.5 (k + 4)
    assert [balance.keeps(i) for i in range(6)] == [True] * 4 + [False] * 2
    assert all(balance.keeps(i) for i in range(6, 10))
    assert run.accepted_counts(balance) == {"card": 4, "transfer": 2, "balance": 2}
    assert any("at most 4 row(s)" in note for note in run.report.notes)


def test_balance_off_keeps_every_candidate(tmp_path: Path) -> None:
    run = _run(tmp_path, {"label_balance": {"enabled": False}})
    run.candidates.add("card", 1)
    balance = run.balance()
    assert balance == BalanceCap() and balance.keeps(0)
    assert run.accepted_counts(balance) == {"card": 1}
