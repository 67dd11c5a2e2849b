"""The trainer service outlives its jobs: memory a finished run freed must go back to the machine
(glibc keeps freed heap pages otherwise; an idle trainer held 12 GB after one CPU run)."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest
import torch

from services.trainer.devices import release_memory


def _rss_mb() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists() or not ctypes.util.find_library("c"),
                    reason="needs Linux /proc and a C library")
def test_release_memory_returns_freed_heap_pages() -> None:
    # 4,000 tensors of 100 kB (below glibc's mmap threshold: heap memory), then free 9 in 10 so
    # the heap cannot simply shrink from the top — what activations of a training step leave.
    chunks = [torch.ones(25_000) for _ in range(4000)]
    kept = chunks[9::10]
    del chunks
    before = _rss_mb()
    release_memory()
    after = _rss_mb()
    assert before - after > 150, (before, after)
    assert all(float(t[0]) == 1.0 for t in kept)  # what is still referenced is untouched
