"""The HTTP edge both aiohttp services stand on: limits and timeouts on connections, heads and
bodies, request bodies inflated in bounded steps, parser errors in the JSON error shape, and the
security headers.

aiohttp's parser inflates ``Content-Encoding`` bodies itself (``auto_decompress``), on the event
loop and before any size check of the decoded body: a 0.9 MB gzip body of 900 MB froze a service
for about a second. Here the parser hands over the raw bytes (``auto_decompress=False``, an app
``handler_args``), ``read_body`` refuses raw bodies over the limit, then inflates in 64 KiB steps
and stops at the limit. The head timeout is aiohttp's keep-alive timer, which also runs from the
moment a connection opens and closes it when no complete head arrived; the body timeout is a
timer per request that fails the body stream. ``EdgeRunner`` adds what only the server level can
do: a cap on open connections, overall and per client address (so one client cannot take them
all), and parser errors answered as ``{"error": ...}`` JSON, or in the shape an ``ErrorRenderer``
gives (the embedded ClickHouse server answers ClickHouse's ``Code: N. DB::Exception`` text).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from infra.service import run_until_signalled
from infra.settings import CommonSettings
from schemas import ErrorCode

log = logging.getLogger(__name__)

INFLATE_STEP = 64 * 1024
"""Bytes of decoded body produced per inflate step; the loop yields every ``YIELD_EVERY`` steps."""
YIELD_EVERY = 16
MAX_GZIP_MEMBERS = 100
"""Members of a multi-member gzip body (clients send one; each further member costs a copy of
the rest of the body, so 40,000 empty ones in 800 KB took 2 s of CPU)."""
LINGER_S = 2.0
"""How long an answered request's unread body is still read (so the client sees the answer)."""
SUPPORTED_ENCODINGS = ("identity", "gzip", "deflate")
MAX_REASON = 200

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""CSP of answers that are data (JSON, metrics): nothing may load, nothing may frame them."""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class HttpServerSettings(CommonSettings):
    """Limits of an HTTP service's connections (``MODELGATE_HTTP_*``, shared by both services)."""

    http_header_timeout_s: float = 10.0
    """A connection must deliver a complete request head this soon after it opens or after its
    previous answer (also the idle keep-alive timeout); else it is closed."""

    http_body_timeout_s: float = 60.0
    """A request's whole body must arrive this soon after its head (else 408)."""

    http_max_connections: int = 1000
    """Open connections at most; beyond it a new connection is answered 503 and closed."""

    http_max_connections_per_address: int = 100
    """Open connections of one client address at most (IPv6: of one /64), so that one client
    cannot take the whole ``http_max_connections``; beyond it that address's new connections are
    answered 503 and closed."""

    http_per_address_exempt_loopback: bool = False
    """Leave loopback clients out of the per-address cap (by default they are held to it like
    any address: a local process is not trusted more than a remote one)."""

    http_max_header_bytes: int = 8190
    """Longest request line and header field (longer: 431 JSON)."""


def handler_args(settings: HttpServerSettings) -> dict[str, Any]:
    """``web.Application(handler_args=...)``: what every connection of the app is held to."""
    return {
        "auto_decompress": False,
        "keepalive_timeout": settings.http_header_timeout_s,
        "lingering_time": LINGER_S,
        "max_line_size": settings.http_max_header_bytes,
        "max_field_size": settings.http_max_header_bytes,
    }


def error_json(code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    """``schemas.ErrorBody`` as bytes."""
    return orjson.dumps({"error": {"code": code, "message": message, "details": details or {}}})


ErrorRenderer = Callable[[int, str, str, dict[str, Any]], tuple[bytes, dict[str, str]]]
"""How a server writes the errors of its edge (parser errors, connections over the cap):
``(status, code, message, details) -> (body, headers)``; the headers include Content-Type."""


def render_json(
    status: int, code: str, message: str, details: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """The services' ``{"error": {"code", "message", "details"}}``."""
    return error_json(code, message, details), {"Content-Type": "application/json"}


def add_security_headers(response: web.StreamResponse, csp: str = API_CSP) -> None:
    """nosniff, no framing, no referrer, and a CSP (unless the handler set its own)."""
    if response.prepared:
        return
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", csp)


# --- request bodies ----------------------------------------------------------------------------


class BodyError(Exception):
    """A request body that cannot be read; each service maps it to its own error type."""

    status = 400
    code: str = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BodyTooLarge(BodyError):
    status = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes", {"max_bytes": limit})


class UnsupportedEncoding(BodyError):
    status = 415
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE

    def __init__(self, encoding: str) -> None:
        super().__init__(
            f"Content-Encoding {encoding[:40]!r} is not supported",
            {"content_encoding": encoding[:40], "supported": list(SUPPORTED_ENCODINGS)},
        )


class BodyTimeout(BodyError, TimeoutError):
    """Also a ``TimeoutError``, so aiohttp's lingering read after the answer stops quietly."""

    status = 408
    code = ErrorCode.REQUEST_TIMEOUT

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            f"the body did not arrive within {timeout_s:g} s", {"timeout_s": timeout_s}
        )


class ClientClosed(BodyError):
    """The client went away before its body arrived: recorded as 499, never a server error."""

    status = 499
    code = ErrorCode.CLIENT_CLOSED_REQUEST

    def __init__(self) -> None:
        super().__init__("the client closed the connection before its body arrived")


def content_encoding(request: web.BaseRequest) -> str:
    """The body's single coding (``identity`` when none); ``UnsupportedEncoding`` otherwise."""
    raw = request.headers.get("Content-Encoding", "")
    encoding = raw.strip().lower()
    if encoding in ("", "identity"):
        return "identity"
    if encoding == "x-gzip":
        return "gzip"
    if encoding in SUPPORTED_ENCODINGS:
        return encoding
    raise UnsupportedEncoding(raw.strip())


async def read_body(request: web.BaseRequest, max_bytes: int) -> bytes:
    """The decoded body, at most ``max_bytes`` before and after decoding (``BodyTooLarge``).

    ``ClientClosed`` when the client disconnects, ``BodyTimeout`` when the body deadline passed,
    ``UnsupportedEncoding`` (415) for codings other than gzip and deflate.
    """
    encoding = content_encoding(request)
    length = request.content_length
    if length is not None and length > max_bytes:
        raise BodyTooLarge(max_bytes)
    raw = bytearray()
    content = request.content
    try:
        while chunk := await content.readany():
            raw += chunk
            if len(raw) > max_bytes:
                raise BodyTooLarge(max_bytes)
    except ConnectionError:
        raise ClientClosed() from None
    except RequestPayloadError as exc:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ClientClosed() from None
        raise BodyError(f"malformed body: {str(exc)[:MAX_REASON]}") from None
    if encoding == "identity":
        return bytes(raw)
    return await inflate(bytes(raw), encoding, max_bytes)


async def inflate(data: bytes, encoding: str, max_bytes: int) -> bytes:
    """gzip or deflate ``data`` decoded in ``INFLATE_STEP`` steps, refused past ``max_bytes``."""
    if not data:
        return b""
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:  # "deflate" is zlib-wrapped by the RFC; some clients send it raw
        wbits = zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    steps = 0
    members = 1
    try:
        while True:
            piece = decoder.decompress(pending, INFLATE_STEP)
            pending = decoder.unconsumed_tail
            out += piece
            if len(out) > max_bytes:
                raise BodyTooLarge(max_bytes)
            if decoder.eof:
                pending = decoder.unused_data
                if not pending or encoding != "gzip":
                    break
                members += 1
                if members > MAX_GZIP_MEMBERS:
                    raise BodyError(f"the gzip body has more than {MAX_GZIP_MEMBERS} members")
                decoder = zlib.decompressobj(wbits)  # the next member of a multi-member gzip
            elif not pending and len(piece) < INFLATE_STEP:
                break
            steps += 1
            if steps % YIELD_EVERY == 0:
                await asyncio.sleep(0)
    except zlib.error as exc:
        raise BodyError(f"the {encoding} body is corrupt: {exc}") from None
    if not decoder.eof:
        raise BodyError(f"the {encoding} body is truncated")
    return bytes(out)


def arm_body_deadline(request: web.BaseRequest, timeout_s: float) -> asyncio.TimerHandle | None:
    """Fail the body stream with ``BodyTimeout`` if it is not complete ``timeout_s`` from now.

    Every reader (``read_body``, ``request.post()``, aiohttp's lingering read) then stops.
    """
    if not request.body_exists:
        return None
    content = request.content
    if content.is_eof():
        return None

    def expire() -> None:
        if not content.is_eof():
            content.set_exception(BodyTimeout(timeout_s))

    return asyncio.get_running_loop().call_later(timeout_s, expire)


def edge_middleware(
    settings: HttpServerSettings,
    csp_for: Callable[[web.StreamResponse], str] = lambda _: API_CSP,
) -> Any:
    """Outermost middleware: the body deadline for each request, security headers on each answer.

    ``csp_for`` picks the policy of an answer (the dashboard's HTML needs its own).
    """
    timeout_s = settings.http_body_timeout_s

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        deadline = arm_body_deadline(request, timeout_s)
        try:
            response = await handler(request)
        finally:
            if deadline is not None and request.content.is_eof():
                deadline.cancel()  # else it stays armed: it also ends a lingering read
        add_security_headers(response, csp_for(response))
        return response

    return middleware


# --- the server --------------------------------------------------------------------------------

_REASONS = {503: "Service Unavailable"}
RETRY_AFTER_S = 1
BUSY_LINGER_S = 1.0
"""How long a refused connection stays half-open (our side shut for writing) after the client's
last bytes, to read and drop what it sends, so that its request arriving after the 503 does not
reset the connection and destroy the answer before the client reads it."""
BUSY_LINGER_MAX_S = 10.0
"""A refused client still sending (a large body written slowly) is cut off after this long."""


def busy_response(render: ErrorRenderer, reason: str) -> bytes:
    """The raw 503 a connection over a cap gets (then the connection closes)."""
    body, headers = render(
        503,
        ErrorCode.SERVICE_UNAVAILABLE,
        f"too many open connections{reason}; retry shortly",
        {"retry_after_s": RETRY_AFTER_S},
    )
    lines = [b"HTTP/1.1 503 Service Unavailable"]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    lines += [
        b"Content-Length: " + str(len(body)).encode(),
        b"Retry-After: " + str(RETRY_AFTER_S).encode(),
        b"Connection: close",
        b"X-Content-Type-Options: nosniff",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def address_key(peer: Any) -> str | None:
    """The per-address cap's key of a TCP peer: IPv4 as is, IPv6 by its /64 (a machine is
    usually given a whole /64), IPv4-mapped IPv6 as IPv4; ``None`` for no IP peer."""
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class _Busy(asyncio.Protocol):
    """A connection over a cap: the 503 is written at once, our side is shut for writing (the
    client reads the whole answer, then end of stream), and what the client still sends is read
    and dropped for ``BUSY_LINGER_S``, so that no reset destroys the answer; then it closes."""

    def __init__(self, server: EdgeServer, response: bytes) -> None:
        self._server = server
        self._response = response
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        transport.write(self._response)
        server = self._server
        if server.lingering >= server.max_lingering or not transport.can_write_eof():
            transport.close()  # too many already lingering: fds matter more than the answer
            return
        transport.write_eof()
        server.lingering += 1
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + BUSY_LINGER_MAX_S
        self._timer = loop.call_later(BUSY_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        """Dropped: the client is only given time to read its answer. While it keeps sending
        (a large body on a busy machine), closing would reset the connection under the answer:
        the linger restarts, up to ``BUSY_LINGER_MAX_S`` in all."""
        if self._timer is None or self._transport is None:
            return
        loop = asyncio.get_running_loop()
        close_at = min(loop.time() + BUSY_LINGER_S, self._deadline)
        if close_at > self._timer.when():
            self._timer.cancel()
            self._timer = loop.call_at(close_at, self._transport.close)

    def eof_received(self) -> bool:
        return False  # the client is done: the transport closes

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._server.lingering -= 1


class _Gate(asyncio.Protocol):
    """A new connection's first protocol: it asks the server whether the connection is admitted
    (the peer address is only known here) and hands the transport to a request handler, or to
    ``_Busy``."""

    def __init__(self, server: EdgeServer) -> None:
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        protocol: asyncio.Protocol = self._server.admit(transport)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class EdgeRequestHandler(RequestHandler):
    """aiohttp's connection handler, but its own errors (parser errors, failures outside every
    middleware) leave in the server's error shape (``{"error": ...}`` JSON with the security
    headers by default), never plain text."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was already started; cannot send an error")
        details: dict[str, Any] = {}
        if isinstance(exc, LineTooLong):
            status, code = 431, ErrorCode.HEADER_TOO_LARGE
            limit = exc.args[1] if len(exc.args) > 1 else "the limit"
            text = f"a request line or header field is longer than {limit} bytes"
            details["max_bytes"] = limit
        elif status >= 500:
            log.error("error outside the middlewares on %s", request.path, exc_info=exc)
            code, text = ErrorCode.INTERNAL_ERROR, "internal error"
        else:
            code, text = ErrorCode.BAD_REQUEST, "malformed HTTP request"
            reason = getattr(exc, "message", None) or message or ""
            details["reason"] = str(reason)[:MAX_REASON]
        if status < 500:
            log.info("refused a malformed request from %s: %s", request.remote, code)
        render = getattr(self._manager, "render_error", render_json)
        body, headers = render(status, code, text, details)
        response = web.Response(status=status, body=body, headers=headers)
        add_security_headers(response)
        response.force_close()
        return response


class EdgeServer(web.Server):
    """aiohttp's low-level server with caps on open connections (overall and per client
    address), and ``EdgeRequestHandler``."""

    def __init__(
        self,
        handler: Any,
        *,
        max_connections: int,
        max_per_address: int | None = None,
        exempt_loopback: bool = False,
        render_error: ErrorRenderer = render_json,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.max_per_address = max_per_address or max_connections
        self.exempt_loopback = exempt_loopback
        self.render_error = render_error
        self.max_lingering = max_connections
        self.lingering = 0
        self.refused = 0
        self.per_address: dict[str, int] = {}
        self._keys: dict[RequestHandler, str] = {}
        self._busy = busy_response(render_error, "")
        self._busy_address = busy_response(render_error, " from this address")

    def __call__(self) -> Any:
        return _Gate(self)

    def _key(self, transport: asyncio.Transport) -> str | None:
        key = address_key(transport.get_extra_info("peername"))
        if key is not None and self.exempt_loopback:
            if ipaddress.ip_network(key, strict=False).network_address.is_loopback:
                return None
        return key

    def admit(self, transport: asyncio.Transport) -> asyncio.Protocol:
        """A request handler for a new connection, or ``_Busy`` when it is over a cap."""
        key = self._key(transport)
        if len(self._connections) >= self.max_connections:
            return self._refuse(self._busy, f"{len(self._connections)} open connections")
        if key is not None and self.per_address.get(key, 0) >= self.max_per_address:
            return self._refuse(
                self._busy_address, f"{self.per_address[key]} open connections from {key}"
            )
        handler = EdgeRequestHandler(self, loop=self._loop, **self._kwargs)
        if key is not None:
            self.per_address[key] = self.per_address.get(key, 0) + 1
            self._keys[handler] = key
        return handler

    def _refuse(self, response: bytes, why: str) -> asyncio.Protocol:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("%s: refusing new connections (%d so far)", why, self.refused)
        return _Busy(self, response)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        key = self._keys.pop(handler, None)
        if key is not None:
            left = self.per_address.get(key, 1) - 1
            if left > 0:
                self.per_address[key] = left
            else:
                self.per_address.pop(key, None)
        super().connection_lost(handler, exc)


class EdgeRunner(web.AppRunner):
    """``web.AppRunner`` serving the app through ``EdgeServer``."""

    __slots__ = ("_edge", "_render_error")

    def __init__(
        self,
        app: web.Application,
        *,
        settings: HttpServerSettings,
        render_error: ErrorRenderer = render_json,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._edge = settings
        self._render_error = render_error

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return EdgeServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            max_connections=self._edge.http_max_connections,
            max_per_address=self._edge.http_max_connections_per_address,
            exempt_loopback=self._edge.http_per_address_exempt_loopback,
            render_error=self._render_error,
            **server._kwargs,
        )


async def start_app(
    app: web.Application,
    host: str,
    port: int,
    settings: HttpServerSettings,
    render_error: ErrorRenderer = render_json,
    *,
    reuse_port: bool = False,
    unix_socket: str = "",
    **kwargs: Any,
) -> EdgeRunner:
    """Serve ``app`` on ``host:port`` through ``EdgeRunner``; ``runner.cleanup()`` stops it.

    ``reuse_port``: with ``SO_REUSEPORT``, so several processes share the port; ``unix_socket``:
    also on this Unix socket (a stale socket file there is replaced). ``kwargs`` go to
    ``web.AppRunner`` (``shutdown_timeout``, ``handler_cancellation``...)."""
    runner = EdgeRunner(
        app, settings=settings, render_error=render_error, access_log=None, **kwargs
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        if unix_socket:
            path = Path(unix_socket)
            if path.is_socket():
                path.unlink()
            await web.UnixSite(runner, unix_socket).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def run_app(
    app: web.Application,
    host: str,
    port: int,
    settings: HttpServerSettings,
    shutdown_timeout: float = 60.0,
    render_error: ErrorRenderer = render_json,
    *,
    reuse_port: bool = False,
    unix_socket: str = "",
    **kwargs: Any,
) -> None:
    """What ``web.run_app`` does (uvloop, until SIGTERM/SIGINT, then a graceful stop), through
    ``EdgeRunner``; ``reuse_port`` and ``unix_socket`` as in ``start_app``; ``kwargs`` go to
    ``web.AppRunner``."""

    async def serve(stop: asyncio.Event) -> None:
        runner = await start_app(
            app,
            host,
            port,
            settings,
            render_error,
            reuse_port=reuse_port,
            unix_socket=unix_socket,
            shutdown_timeout=shutdown_timeout,
            **kwargs,
        )
        # What the app's start made (connections, caches, routes) lives as long as the service:
        # out of the garbage collector's way from now on (``infra.service.tune_gc``).
        gc.freeze()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    run_until_signalled(serve)
