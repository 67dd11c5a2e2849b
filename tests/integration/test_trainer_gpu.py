"""GPU paths of the trainer: bf16 on CUDA chosen automatically, and multi-GPU data parallelism
through torchrun (world size decided by the launcher). Skipped cleanly without CUDA."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.trainer_data import SPEC, student_path, write_train

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _run(tmp_path: Path, student: Path, launcher: list[str]) -> dict:
    request = {"task": {"name": SPEC.name, "type": "TASK_TYPE_CLASSIFICATION", "description": SPEC.description,
                        "labels": SPEC.labels},
               "train": {"uri": str(write_train(tmp_path / "train.jsonl"))}, "student": {"uri": str(student)},
               "config": {"max_steps": 8, "batch_size": 8, "learning_rate": 5e-4, "checkpoint_every_steps": 4}}
    (tmp_path / "request.json").write_text(json.dumps(request))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([*launcher, "-m", "services.trainer.run_job", "--request", str(tmp_path / "request.json"),
                           "--out", str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "out" / "result.json").read_text())


@pytest.fixture(scope="module")
def student(request: pytest.FixtureRequest) -> Path:
    cache = None if os.environ.get("DISTILLERY_TEST_STUDENT_DIR") else request.getfixturevalue("model_cache")
    return student_path(cache)


def test_single_gpu_trains_in_bf16(tmp_path: Path, student: Path) -> None:
    result = _run(tmp_path, student, [sys.executable])
    assert result["device"].startswith("cuda:0") and "bfloat16" in result["device"]
    assert result["steps"] == 8 and result["final_eval_loss"] > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_torchrun_data_parallel(tmp_path: Path, student: Path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    result = _run(tmp_path, student, [torchrun, "--standalone", "--nnodes=1", "--nproc_per_node=2"])
    assert "world_size=2" in result["device"] and result["steps"] == 8
