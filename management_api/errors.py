"""The management API's one error hierarchy; a middleware maps it to ``schemas.ErrorBody``."""

from __future__ import annotations

from typing import Any

from schemas import ErrorCode


class ServiceError(Exception):
    """An expected failure with a stable code, a sentence for humans, and an HTTP status."""

    status = 500
    code: str = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidInput(ServiceError):
    status = 400
    code = ErrorCode.INVALID_INPUT


class InvalidJson(ServiceError):
    status = 400
    code = ErrorCode.INVALID_JSON


class Unauthorized(ServiceError):
    status = 401
    code = ErrorCode.UNAUTHORIZED


class InvalidCredentials(ServiceError):
    status = 401
    code = "INVALID_CREDENTIALS"


class Forbidden(ServiceError):
    status = 403
    code = ErrorCode.FORBIDDEN


class NotFound(ServiceError):
    status = 404
    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    status = 409
    code = ErrorCode.CONFLICT


class IncompatibleVersion(ServiceError):
    """The version would break requests the API accepts today; ``details`` carry the diff."""

    status = 409
    code = "INCOMPATIBLE_VERSION"


class TooManyRequests(ServiceError):
    status = 429
    code = ErrorCode.RATE_LIMITED


class PayloadTooLarge(ServiceError):
    status = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE


class UnsupportedMediaType(ServiceError):
    status = 415
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class ServiceUnavailable(ServiceError):
    status = 503
    code = ErrorCode.SERVICE_UNAVAILABLE
