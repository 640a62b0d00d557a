"""The HeraldError tree: every failure has a stable code and structured fields."""

from __future__ import annotations

from typing import Any, ClassVar


class HeraldError(Exception):
    """Base of every error Herald raises on purpose; HTTP status mapping lives in api/errors.py."""

    code: ClassVar[str] = "herald_error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class NotFoundError(HeraldError):
    code = "not_found"


class InvalidInputError(HeraldError):
    code = "invalid_input"


class ConflictError(HeraldError):
    code = "conflict"


class UnauthorizedError(HeraldError):
    code = "unauthorized"


class ForbiddenError(HeraldError):
    code = "forbidden"


class DatabaseNotReadyError(HeraldError):
    code = "database_not_migrated"


class BackupVerificationError(HeraldError):
    code = "backup_verification_failed"
