"""JSON Lines I/O with line numbers and crash safety.

Writers append whole lines and fsync per batch; a reader that finds a last line without its
newline knows the writer died mid-line and drops it (``repair`` truncates it away), so a
half-written row is never read as whole."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JsonlLine:
    line: int
    value: Any | None
    error: str | None = None
    raw: str = ""


def iter_jsonl(path: Path, skip_partial_tail: bool = True) -> Iterator[JsonlLine]:
    """Yield every non-blank line with its 1-based number; a line that is not valid JSON comes
    with ``error`` set (never raised), so callers decide whether it is fatal or a rejected row."""
    with open(path, "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    for index, raw_bytes in enumerate(lines, start=1):
        is_last = index == len(lines)
        if is_last and (not raw_bytes or (skip_partial_tail and not complete)):
            break
        raw = raw_bytes.decode("utf-8", errors="replace").rstrip("\r")
        if not raw.strip():
            continue
        try:
            yield JsonlLine(index, json.loads(raw), raw=raw)
        except json.JSONDecodeError as exc:
            yield JsonlLine(index, None, f"not valid JSON: {exc.msg} (column {exc.colno})", raw=raw)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete, valid JSON object lines (for files this platform wrote itself)."""
    return [item.value for item in iter_jsonl(path) if item.error is None and isinstance(item.value, dict)]


def repair_tail(path: Path) -> int:
    """Cut a partial last line left by a crash. Returns the number of bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return 0
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        handle.truncate(keep)
        return size - keep


def dumps(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def jsonl_bytes(rows: Iterable[Any]) -> bytes:
    """Rows as a JSONL file's bytes (one ``dumps`` line each), for ArtifactStore.put_bytes."""
    return "".join(dumps(row) + "\n" for row in rows).encode("utf-8")


class JsonlAppender:
    """Appends rows durably: ``write_batch`` returns only after the rows are on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        self._handle = open(path, "a", encoding="utf-8")

    def write_batch(self, rows: Iterable[Any]) -> int:
        count = 0
        for row in rows:
            self._handle.write(dumps(row) + "\n")
            count += 1
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return count

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl_atomic(path: Path, rows: Iterable[Any]) -> int:
    """Write a whole JSONL file under a temporary name and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name, so two writers of one path never share (and mix) one tmp file.
    fd, tmp_name = tempfile.mkstemp(prefix=f"{path.name}.tmp-", dir=path.parent)
    count = 0
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(dumps(row) + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return count
