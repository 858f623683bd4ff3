"""The one JSON error body every modelgate HTTP service answers with."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ErrorCode(StrEnum):
    """Stable machine-readable error codes (the seeds' codes plus the ones the design adds)."""

    INVALID_INPUT = "INVALID_INPUT"
    INVALID_JSON = "INVALID_JSON"
    INVALID_IMAGE = "INVALID_IMAGE"
    MISSING_API_KEY = "MISSING_API_KEY"
    INVALID_API_KEY = "INVALID_API_KEY"
    API_INACTIVE = "API_INACTIVE"
    API_NOT_FOUND = "API_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    PREDICTION_FAILED = "PREDICTION_FAILED"
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    OVERLOADED = "OVERLOADED"
    REGISTRY_NOT_READY = "REGISTRY_NOT_READY"
    TIMEOUT = "TIMEOUT"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    CLIENT_CLOSED_REQUEST = "CLIENT_CLOSED_REQUEST"
    BAD_REQUEST = "BAD_REQUEST"
    HEADER_TOO_LARGE = "HEADER_TOO_LARGE"


class ErrorDetail(BaseModel):
    """What went wrong: a code, a sentence for humans, and structured details."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, code: str, message: str, details: dict[str, Any] | None = None) -> ErrorBody:
        return cls(error=ErrorDetail(code=code, message=message, details=details or {}))
