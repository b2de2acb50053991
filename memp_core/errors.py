"""The one exception hierarchy of memp_core.

The core raises these; the CLI and the pages turn them into one readable message each
(no traceback for anything a user can cause).
"""

from __future__ import annotations


class MempError(Exception):
    """Base of every error memp_core raises on purpose."""


class ConfigError(MempError):
    """A setting is missing or invalid."""


class NotFoundError(MempError):
    """An object asked for by id or key does not exist."""


class StoreError(MempError):
    """The database cannot be opened, read or written."""


class DatabaseLockedError(StoreError):
    """Another process holds the write lock longer than the busy timeout."""


class ConflictError(MempError):
    """An edit started from a revision that is no longer the current one."""


class PermissionDeniedError(MempError):
    """The signed-in person's role does not allow this action."""


class LLMError(MempError):
    """The LLM endpoint could not be reached or kept failing."""


class LLMOutputError(LLMError):
    """The model answered, but not in the format asked for."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(f"{message}; raw answer: {raw[:500]!r}" if raw else message)
        self.raw = raw


class ImportFormatError(MempError):
    """An input file is not valid for the chosen format (names file, line and reason)."""

    def __init__(self, path: str, where: str | int | None, reason: str) -> None:
        loc = f"{path}:{where}" if where not in (None, "") else path
        super().__init__(f"{loc}: {reason}")
        self.path = path
        self.where = where
        self.reason = reason


class AuthenticationError(MempError):
    """No API key, an unknown one or a revoked one (HTTP 401)."""


class ScopeError(PermissionDeniedError):
    """The API key is valid but lacks the scope this call needs (HTTP 403)."""


class PayloadTooLargeError(MempError):
    """A request body or report is larger than the service accepts (HTTP 413)."""
