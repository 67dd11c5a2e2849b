"""kill -9 in the middle of training, restart, and the run ends exactly where an uninterrupted run
with the same seed ends (weights, optimizer, scheduler, RNG and data position are checkpointed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from services.common.artifacts import ArtifactStore
from tests.helpers.trainer_data import SPEC, student_path, write_train

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _request(tmp_path: Path, student: Path) -> Path:
    train = write_train(tmp_path / "train.jsonl")
    request = {
        "task": {"name": SPEC.name, "type": "TASK_TYPE_CLASSIFICATION", "description": SPEC.description,
                 "labels": SPEC.labels},
        "train": {"uri": str(train)},
        "student": {"uri": str(student)},
        "config": {"max_steps": 6, "batch_size": 4, "checkpoint_every_steps": 2, "max_seq_len": 96, "lora_r": 8,
                   "lora_alpha": 16, "seed": 7, "eval_fraction": 0.1, "merged_dtype": "bfloat16"},
        "request_id": "resume",
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    return path


def _command(request: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "services.trainer.run_job", "--request", str(request), "--out", str(out)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("WORLD_SIZE", None)
    return env


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    result = json.loads((out / "result.json").read_text())
    store = ArtifactStore((out / "store").as_uri())
    return load_file(str(store.local_path(result["adapter_artifact"]["uri"]) / "adapter_model.safetensors"))


def test_kill_9_and_resume_matches_an_uninterrupted_run(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cache = None if os.environ.get("DISTILLERY_TEST_STUDENT_DIR") else request.getfixturevalue("model_cache")
    req = _request(tmp_path, student_path(cache))

    straight = tmp_path / "straight"
    done = subprocess.run(_command(req, straight), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    progress = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    steps = [p for p in progress if "loss" in p and "step" in p]
    assert steps and {"learning_rate", "tokens_per_second", "eta_seconds"} <= set(steps[-1])

    crashed = tmp_path / "crashed"
    log = open(tmp_path / "crashed.log", "wb")
    proc = subprocess.Popen(_command(req, crashed), cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    first = crashed / "work" / "checkpoints" / "step-00000002" / "state.json"
    deadline = time.time() + 1200
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.exists(), (tmp_path / "crashed.log").read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    log.close()
    assert not (crashed / "result.json").exists()

    resumed = subprocess.run(_command(req, crashed), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from checkpoint" in resumed.stderr
    store = ArtifactStore((crashed / "store").as_uri())
    metrics = store.read_json(json.loads((crashed / "result.json").read_text())["metrics"]["uri"])
    assert metrics["resumed_from_steps"] and metrics["steps"] == 6

    a, b = _adapter(straight), _adapter(crashed)
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
    straight_metrics = ArtifactStore((straight / "store").as_uri()).read_json(
        json.loads((straight / "result.json").read_text())["metrics"]["uri"])
    assert [h["loss"] for h in metrics["history"]] == pytest.approx([h["loss"] for h in straight_metrics["history"]],
                                                                   rel=1e-5)
