"""Typed errors of the core. Core code raises these; only the gRPC edge maps them to status codes.

Messages are written for the person who has to fix the input: they name the file, the line and
the field where there is one, and never contain a stack trace.
"""

from __future__ import annotations


class DistilleryError(Exception):
    """Base of every error the platform raises on purpose. ``code`` names a gRPC status."""

    code: str = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DistilleryError):
    """The request or an input file is malformed."""

    code = "INVALID_ARGUMENT"


class NotFound(DistilleryError):
    code = "NOT_FOUND"


class AlreadyExists(DistilleryError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(DistilleryError):
    """The system is not in a state to do this (model not loaded, stage not finished...)."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(DistilleryError):
    """A size limit or budget was exceeded."""

    code = "RESOURCE_EXHAUSTED"


class PermissionDenied(DistilleryError):
    code = "PERMISSION_DENIED"


class Unauthenticated(DistilleryError):
    code = "UNAUTHENTICATED"


class Cancelled(DistilleryError):
    code = "CANCELLED"


class Unavailable(DistilleryError):
    """A dependency (another service, the teacher API) cannot be reached right now."""

    code = "UNAVAILABLE"


class LeaseLost(DistilleryError):
    """This process no longer holds the operation: its lease ran out and another replica took the
    job over. The write is refused so that two replicas never both write one operation."""

    code = "ABORTED"


class DataLoss(DistilleryError):
    """An artifact's bytes no longer match the checksum recorded when it was written."""

    code = "DATA_LOSS"


class TaskFolderError(InvalidArgument):
    """A problem in a task folder, located as precisely as possible: ``file:line: field ...``."""

    def __init__(self, file: str, message: str, line: int | None = None, field: str | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        text = f"{where}: {message}" if field is None or field in message else f"{where}: {field}: {message}"
        super().__init__(text)
        self.file = file
        self.line = line
        self.field = field


class ArtifactPathError(PermissionDenied):
    """An artifact URI points outside the store root (``../``, an absolute path elsewhere)."""


class UnsafeModelError(FailedPrecondition):
    """A model directory holds pickle weights (``.bin``, ``.pt``) and no safetensors."""
