"""The interface every filter implements."""

from __future__ import annotations

from typing import Protocol

from services.validator.row import Row


class Filter(Protocol):
    #: The reason code this filter rejects with.
    reason: str

    def apply(self, rows: list[Row]) -> None:
        """Reject (``row.reject(reason, detail)``) the rows that fail; rows come in file order."""

    def notes(self) -> list[str]:
        """Human-readable remarks for the report (fallbacks used, inputs missing)."""
