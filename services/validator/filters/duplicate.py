"""Exact duplicates: two inputs (with their context) that are equal after folding case,
whitespace and punctuation (taskspec.normalize_text). The first one in file order is kept; an
input equal to a seed's is a duplicate of that seed. Memory: a 16-byte digest per kept row."""

from __future__ import annotations

import hashlib

from services.validator.config import DuplicateConfig
from services.validator.row import Row


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


class DuplicateFilter:
    reason = "duplicate"

    def __init__(self, config: DuplicateConfig, seed_keys: list[str]) -> None:
        # digest → where the kept copy is ("line 12" or "seed 3")
        self.seen: dict[bytes, str] = {}
        if config.against_seeds:
            for index, key in enumerate(seed_keys, start=1):
                self.seen.setdefault(_digest(key), f"seed {index}")

    def apply(self, rows: list[Row]) -> None:
        for row in rows:
            digest = _digest(row.key)
            first = self.seen.get(digest)
            if first is None:
                self.seen[digest] = f"line {row.line}"
            else:
                row.reject(self.reason, f"input duplicates {first} after normalisation")

    def notes(self) -> list[str]:
        return []
