"""What a browser needs to call the prediction routes from another origin (the dashboard's "Try it"
panel, a customer's web page): CORS preflights answered here, before routing, key checks and rate
limits, so that a preflight spends no token and records no event; ``Access-Control-Allow-Origin``
and the headers a script may read on the answers; and ingress's own time in ``Server-Timing``.

Credentials are never allowed (no ``Access-Control-Allow-Credentials``): the key travels in a header
that the calling script must set itself, ingress reads no cookie and no HTTP authentication the
browser would add on its own, so a page on any origin can do with a key no more than a script on
any server can with the same key. ``*`` (the default of ``MODELGATE_INGRESS_CORS_ORIGINS``) is
therefore safe; a list narrows it to the origins named (each echoed only when it is listed, with
``Vary: Origin``; never an arbitrary origin reflected). Private Network Access preflights are not
granted: a public page must not reach an ingress that only an intranet can see.
"""

from __future__ import annotations

import time

from aiohttp import web

PREFIXES = ("/api/predict/", "/v2/")
"""Paths browsers may call cross-origin: the prediction route and the Open Inference Protocol's."""
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "X-API-Key, Content-Type, Authorization, Idempotency-Key, traceparent, tracestate"
EXPOSE_HEADERS = (
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, Retry-After, "
    "X-Request-Id, traceparent, Server-Timing"
)
MAX_AGE_S = 600
"""How long a browser may reuse a preflight's answer (Chromium caps it at 7,200 s)."""


def cors_path(path: str) -> bool:
    """Whether browsers may call ``path`` from another origin."""
    return path.startswith(PREFIXES)


def allow_origin(origins: list[str], origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` for a request's ``Origin``: ``*`` when any is allowed,
    the origin itself when it is listed (exact match), else none."""
    if origin is None:
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


def preflight_headers(allowed: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(MAX_AGE_S),
    }


class Cors:
    """The CORS policy of ``origins`` (``*`` or a list), applied by ingress's edge middleware
    (``ingress.app``) to the paths of :data:`PREFIXES`."""

    def __init__(self, origins: list[str]) -> None:
        self.origins = list(origins)
        self.listed = "*" not in self.origins

    def allowed(self, request: web.Request) -> str | None:
        return allow_origin(self.origins, request.headers.get("Origin"))

    def preflight(self, allowed: str | None) -> web.Response:
        """The answer to an ``OPTIONS`` request on such a path, routed or not: nothing behind
        runs (no key check, no token spent, no event)."""
        headers = preflight_headers(allowed) if allowed is not None else {}
        if self.listed:
            headers["Vary"] = "Origin"
        return web.Response(status=204, headers=headers)

    def finish(self, response: web.StreamResponse, allowed: str | None, started: float) -> None:
        """The answer's CORS headers and ingress's time in ``Server-Timing`` (not on an answer
        already streamed: its headers are gone)."""
        if response.prepared:
            return
        headers = response.headers
        headers["Server-Timing"] = f"ingress;dur={(time.perf_counter() - started) * 1000.0:.1f}"
        if allowed is not None:
            headers["Access-Control-Allow-Origin"] = allowed
            headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if self.listed:
            headers.add("Vary", "Origin")
