"""The one error type of the ingress boundary, mapped to ``schemas.ErrorBody`` in one place."""

from __future__ import annotations

from typing import Any

import orjson

from schemas import ErrorCode


class IngressError(Exception):
    """A request that ends with an error status and ``{"error": {code, message, details}}``."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers
        """Headers the answer carries besides the usual ones (``Retry-After``)."""

    def body(self) -> bytes:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    """Encode ``schemas.ErrorBody`` without building a model on the request path."""
    return orjson.dumps({"error": {"code": code, "message": message, "details": details or {}}})
