"""Writing a small file so that a reader (or a process restarted after ``kill -9``) sees either the
old content or the new one, never half of it: write a temporary file next to the target, fsync
it, rename it over the target (atomic on one file system), fsync the directory so the rename
itself survives a power cut. The one place this is written out (state files, results, markers)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two threads of one process (a run that lost its lease and the
    # one that took over) may write the same file at once; a shared ``.tmp-<pid>`` would mix them.
    fd, tmp_name = tempfile.mkstemp(prefix=f"{path.name}.tmp-", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_json_atomic(path: Path, data: Any, indent: int | None = 1, mode: int = 0o644) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False).encode("utf-8"), mode)
