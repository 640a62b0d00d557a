"""The HeraldError tree: every failure has a stable code, an HTTP status and structured fields."""

from __future__ import annotations

from typing import Any, ClassVar


class HeraldError(Exception):
    """Base of every error Herald raises on purpose.

    `http_status` is a class attribute, so a subclass that sets none answers with its nearest
    base's status (plain attribute lookup walks the MRO). The API and the web pages both read it;
    docs/errors.md lists every code with its status, and a test keeps the two in step.
    """

    code: ClassVar[str] = "herald_error"
    # A bare HeraldError has no more specific meaning than "we failed": never a silent 400.
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    @property
    def retry_after(self) -> int | None:
        """Seconds the client should wait before trying again, when the error says so."""
        value = self.fields.get("retry_after")
        return int(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class LeaseLostError(HeraldError):
    """A claimed piece of work was taken over by another worker (its lease ran out): stop, write nothing."""

    code = "lease_lost"
    http_status = 409


class NotFoundError(HeraldError):
    code = "not_found"
    http_status = 404


class InvalidInputError(HeraldError):
    code = "invalid_input"
    http_status = 422


class ConflictError(HeraldError):
    code = "conflict"
    http_status = 409


class UnauthorizedError(HeraldError):
    code = "unauthorized"
    http_status = 401


class ForbiddenError(HeraldError):
    code = "forbidden"
    http_status = 403


class DatabaseNotReadyError(HeraldError):
    code = "database_not_migrated"
    http_status = 503


class StorageUnavailableError(HeraldError):
    """The database cannot take writes right now (disk full); nothing was committed, try again later."""

    code = "storage_unavailable"
    http_status = 503
    default_retry_after: ClassVar[int] = 60

    def __init__(self, message: str, **fields: Any) -> None:
        fields.setdefault("retry_after", self.default_retry_after)
        super().__init__(message, **fields)


class BackupVerificationError(HeraldError):
    code = "backup_verification_failed"
    http_status = 500
