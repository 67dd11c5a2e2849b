"""What every benchmark shares: the machine description and writing results JSON atomically."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    memory_gib = None
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:", 1)[1].split()[0])
        memory_gib = round(kib / 2**20)
    except (OSError, IndexError, ValueError):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "gpu": gpu, "memory_gib": memory_gib,
            "python": platform.python_version()}


def code_version() -> dict[str, Any]:
    """The commit a figure was measured on, and whether the work tree differed from it: a result
    is only quotable for the code it measured (re-measure when that code changes)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        # Results files do not count: a benchmark run after another one sees its JSON rewritten.
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                     ":(exclude)benchmarks/results"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def load_average() -> list[float]:
    """1/5/15-minute load averages: a figure taken above the core count was measured contended."""
    return [round(x, 2) for x in os.getloadavg()]


def contended(before: list[float], after: list[float]) -> bool:
    """Was the 1-minute load above the core count at the start or the end of a run?"""
    return max(before[0], after[0]) > (os.cpu_count() or 1)


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
