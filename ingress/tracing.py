"""W3C trace context at ingress: each request's ``traceparent`` read once, its trace kept for
the request's handling, and ingress's own span named in the answer's ``traceparent``.

Ingress's edge middleware (``ingress.app``) does it for every route (the seeds' prediction route
and the Open Inference Protocol's alike): the header is parsed (``schemas.trace``; a malformed or
repeated one is ignored and a new trace started, never an error), the request's
``RequestTrace`` is held in a context variable for the handler's task, and the answer gets
``traceparent: 00-<trace id>-<ingress span id>-<flags>``.
``PredictionService.predict`` takes the trace from there unless one is passed in (tests, callers
without a socket), stores its trace id on the request event and hands ``traceparent`` on to the
predictor with the batch (``schemas.messages.BatchTrace``).
"""

from __future__ import annotations

from contextvars import ContextVar, Token

from aiohttp import web

from schemas.trace import TRACEPARENT, RequestTrace

_CURRENT: ContextVar[RequestTrace | None] = ContextVar("modelgate_request_trace", default=None)


def request_trace(request: web.Request) -> RequestTrace:
    """The trace a request's headers give: its single valid ``traceparent``, else a new one."""
    values = request.headers.getall(TRACEPARENT, [])
    # The header must appear once; two of them cannot both be the caller's span.
    return RequestTrace.from_header(values[0] if len(values) == 1 else None)


def current_trace() -> RequestTrace:
    """The trace of the request being handled, or a new one outside a request."""
    trace = _CURRENT.get()
    return trace if trace is not None else RequestTrace.from_header(None)


def enter(trace: RequestTrace) -> Token[RequestTrace | None]:
    """Make ``trace`` the current one (for the handler's task) until ``leave``."""
    return _CURRENT.set(trace)


def leave(token: Token[RequestTrace | None]) -> None:
    _CURRENT.reset(token)
