"""W3C trace context at ingress: each request's ``traceparent`` read once, its trace kept for
the request's handling, and ingress's own span named in the answer's ``traceparent``.

One middleware serves every route (the seeds' prediction route and the Open Inference Protocol's
alike): the header is parsed (``schemas.trace``; a malformed or repeated one is ignored and a new
trace started, never an error), the request's ``RequestTrace`` is held in a context variable for
the handler's task, and the answer gets ``traceparent: 00-<trace id>-<ingress span id>-<flags>``.
``PredictionService.predict`` takes the trace from there unless one is passed in (tests, callers
without a socket), stores its trace id on the request event and hands ``traceparent`` on to the
predictor with the batch (``schemas.messages.BatchTrace``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from aiohttp import web
from aiohttp.typedefs import Middleware

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


def middleware() -> Middleware:
    """Reads ``traceparent`` before the handler and writes ingress's on every answer."""

    @web.middleware
    async def trace_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        trace = request_trace(request)
        token = _CURRENT.set(trace)
        try:
            response = await handler(request)
        finally:
            _CURRENT.reset(token)
        response.headers[TRACEPARENT] = trace.traceparent()
        return response

    return trace_middleware
