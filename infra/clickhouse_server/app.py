"""aiohttp adapter of the embedded ClickHouse server: ClickHouse's HTTP interface over chdb.

Handlers only translate HTTP to ``QueryService`` calls and ``Reply``/``ClickHouseError`` back
to ClickHouse's responses (headers, statuses, compression).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from infra import http
from infra.clickhouse_server.engine import Engine
from infra.clickhouse_server.protocol import (
    NOT_IMPLEMENTED,
    STD_EXCEPTION,
    BlockEncoder,
    ChainedCodec,
    ClickHouseError,
    Encoder,
    choose_response_encoding,
    classify_params,
    content_type,
    exception_block,
    new_exception_tag,
    response_encoder,
    truthy,
)
from infra.clickhouse_server.service import QueryService, Reply, credentials_from
from infra.clickhouse_server.sessions import Sessions
from infra.clickhouse_server.settings import ClickHouseServerSettings
from infra.service import configure_logging, tune_gc

log = logging.getLogger(__name__)

# What the HTTP edge's errors (infra/http.py: connections over a cap, parser errors, body
# timeouts) are called in ClickHouse's terms.
NO_FREE_CONNECTION = 203
SOCKET_TIMEOUT = 209
CANNOT_PARSE_INPUT_ASSERTION_FAILED = 27
_EDGE_CODES = {
    "SERVICE_UNAVAILABLE": (NO_FREE_CONNECTION, "NO_FREE_CONNECTION"),
    "REQUEST_TIMEOUT": (SOCKET_TIMEOUT, "SOCKET_TIMEOUT"),
    "INTERNAL_ERROR": (STD_EXCEPTION, "STD_EXCEPTION"),
}

settings_key = web.AppKey("settings", ClickHouseServerSettings)
engine_key = web.AppKey("engine", Engine)
service_key = web.AppKey("service", QueryService)
edge_key = web.AppKey("edge", http.HttpServerSettings)

_READ_CHUNK = 1 << 20
_OFFLOAD_BYTES = 256 * 1024


async def engine_context(app: web.Application) -> AsyncIterator[None]:
    """Open the chdb engine for the server's lifetime; close every connection on shutdown."""
    settings = app[settings_key]
    engine = Engine(
        settings.clickhouse_server_data_dir.resolve(),
        settings.clickhouse_server_max_connections,
        settings.clickhouse_server_analyst_connections,
        settings.analyst_engine_settings(),
        settings.clickhouse_server_analyst_queue_timeout_s,
        settings.clickhouse_server_analyst_queue_limit,
    )
    await asyncio.get_running_loop().run_in_executor(None, engine.open)
    app[engine_key] = engine
    sessions = Sessions(engine)
    app[service_key] = QueryService(
        engine, settings.resolved_users(), settings.clickhouse_server_max_body_bytes, sessions
    )
    sweeper = asyncio.create_task(sessions.sweep())
    yield
    sweeper.cancel()
    with suppress(asyncio.CancelledError):
        await sweeper
    await sessions.close()
    await asyncio.get_running_loop().run_in_executor(None, engine.close)
    log.info("chdb engine closed")


def _base_headers(request: web.Request) -> CIMultiDict[str]:
    settings = request.app[settings_key]
    return CIMultiDict(
        {"X-ClickHouse-Server-Display-Name": settings.clickhouse_server_display_name}
    )


def _error_response(request: web.Request, error: ClickHouseError) -> web.Response:
    engine = request.app.get(engine_key)
    headers = _base_headers(request)
    headers["X-ClickHouse-Exception-Code"] = str(error.code)
    return web.Response(
        status=error.http_status,
        body=error.body(engine.version if engine else ""),
        headers=headers,
        content_type="text/plain",
        charset="utf-8",
    )


def clickhouse_error_renderer(app: web.Application) -> http.ErrorRenderer:
    """``infra.http``'s edge errors as ClickHouse writes errors: ``Code: N. DB::Exception: ...``
    text with ``X-ClickHouse-Exception-Code``, so ClickHouse clients raise them as such."""

    def render(
        status: int, code: str, message: str, details: dict[str, Any]
    ) -> tuple[bytes, dict[str, str]]:
        number, name = _EDGE_CODES.get(
            code, (CANNOT_PARSE_INPUT_ASSERTION_FAILED, "CANNOT_PARSE_INPUT_ASSERTION_FAILED")
        )
        extra = "; ".join(f"{key}: {value}" for key, value in details.items())
        text = f"{message} ({extra})" if extra else message
        error = ClickHouseError(number, f"DB::Exception: {text}. ({name})", name)
        engine = app.get(engine_key)
        settings = app.get(settings_key)
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(number),
        }
        if settings is not None:
            headers["X-ClickHouse-Server-Display-Name"] = settings.clickhouse_server_display_name
        return error.body(engine.version if engine else ""), headers

    return render


@web.middleware
async def body_deadline(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A request's body must arrive within ``http_body_timeout_s`` of its head (else
    SOCKET_TIMEOUT, as ClickHouse's receive timeout), like the services' bodies."""
    edge = request.app.get(edge_key)
    deadline = None if edge is None else http.arm_body_deadline(request, edge.http_body_timeout_s)
    try:
        return await handler(request)
    finally:
        if deadline is not None and request.content.is_eof():
            deadline.cancel()


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="Ok.\n", headers=_base_headers(request))


async def _form_fields(request: web.Request) -> list[tuple[str, str]]:
    """Text fields of a multipart body (clickhouse-connect's form-encoded query and parameters).

    Files in the body are ClickHouse's external data, which the embedded server does not serve.
    """
    fields: list[tuple[str, str]] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.filename:
            raise ClickHouseError.build(
                NOT_IMPLEMENTED,
                "External data (files in multipart bodies) is not supported by the embedded server",
            )
        fields.append((part.name or "", await part.text()))
    return fields


async def query(request: web.Request) -> web.StreamResponse:
    """Run the SQL of one request (URL ``query=``, body, or both) as ClickHouse does."""
    service = request.app[service_key]
    items = list(request.query.items())
    if request.method in {"GET", "HEAD"} and "query" not in request.query:
        return web.Response(text="Ok.\n", headers=_base_headers(request))
    try:
        multipart = request.content_type.startswith("multipart/form-data")
        if multipart:
            items += await _form_fields(request)
        headers = {key.lower(): value for key, value in request.headers.items()}
        params = classify_params(items, headers)
        user = service.authenticate(credentials_from(headers, dict(request.query)))
        body = (
            request.content.iter_chunked(_READ_CHUNK)
            if request.can_read_body and not multipart
            else _empty()
        )
        reply = await service.execute(
            user, request.method, params, body, request.headers.get("Content-Encoding")
        )
    except ClickHouseError as error:
        return _error_response(request, error)
    except http.BodyTimeout as exc:
        return _error_response(
            request,
            ClickHouseError(
                SOCKET_TIMEOUT,
                f"DB::Exception: Timeout exceeded while reading from socket: {exc.message}. "
                "(SOCKET_TIMEOUT)",
                "SOCKET_TIMEOUT",
            ),
        )
    except asyncio.CancelledError:
        log.info("client went away before the result of its request started; query cancelled")
        raise
    except Exception:
        request_id = uuid.uuid4().hex
        log.exception("request %s failed", request_id)
        return _error_response(
            request,
            ClickHouseError.build(
                STD_EXCEPTION, f"Internal error of the embedded server (request {request_id})"
            ),
        )
    encoding = (
        choose_response_encoding(request.headers.get("Accept-Encoding"))
        if params.enable_http_compression
        else None
    )
    return await _send(request, reply, encoding, truthy(params.reserved.get("compress")))


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


async def _send(
    request: web.Request, reply: Reply, encoding: str | None, internal_compression: bool
) -> web.StreamResponse:
    engine = request.app[engine_key]
    headers = _base_headers(request)
    headers["X-ClickHouse-Query-Id"] = reply.query_id
    if reply.format is not None:
        headers["X-ClickHouse-Format"] = reply.format
    headers["X-ClickHouse-Timezone"] = engine.timezone
    headers["X-ClickHouse-Summary"] = json.dumps(reply.summary, separators=(",", ":"))
    headers["Content-Type"] = content_type(reply.format)
    encoder: Encoder | None = response_encoder(encoding) if encoding else None
    if encoding:
        headers["Content-Encoding"] = encoding
    if internal_compression:  # ClickHouse's own blocks inside any HTTP compression
        encoder = ChainedCodec(BlockEncoder(), encoder) if encoder else BlockEncoder()
    if reply.rest is None:
        body = reply.body
        if encoder is not None:
            body = await engine.run(lambda: encoder.feed(reply.body) + encoder.finish())
        return web.Response(body=body, headers=headers)

    # An error after the headers (status 200) is written into the stream between markers
    # carrying this tag, as ClickHouse does, so clients raise instead of keeping a partial result.
    tag = new_exception_tag()
    headers["X-ClickHouse-Exception-Tag"] = tag
    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)
        await _write(response, engine, encoder, reply.body)
        async for chunk in reply.rest:
            await _write(response, engine, encoder, chunk)
        if encoder is not None:
            await response.write(encoder.finish())
        await response.write_eof()
    except ClickHouseError as error:
        log.warning("query %s failed while streaming: %s", reply.query_id, error)
        block = exception_block(tag, error.body(engine.version))
        with suppress(ConnectionError):
            await response.write(encoder.feed(block) + encoder.finish() if encoder else block)
        # And, as ClickHouse does, the response never ends properly (no last chunk): a client
        # that knows nothing of the marker still sees a broken transfer, not a short result.
        if request.transport is not None:
            request.transport.close()
    except (ConnectionError, asyncio.CancelledError) as exc:
        log.info("client went away while query %s was streaming; query cancelled", reply.query_id)
        if isinstance(exc, asyncio.CancelledError):
            raise
    finally:
        await reply.rest.aclose()  # stops (cancels) the engine's query if it is still running
    return response


async def _write(
    response: web.StreamResponse, engine: Engine, encoder: Encoder | None, data: bytes
) -> None:
    if not data:
        return
    if encoder is not None:
        if len(data) >= _OFFLOAD_BYTES:
            data = await engine.run(encoder.feed, data)
        else:
            data = encoder.feed(data)
    if data:
        await response.write(data)


async def not_found(request: web.Request) -> web.Response:
    return web.Response(
        status=404,
        text="There is no handle " + request.path + "\n\nUse / or /ping for health checks.\n",
        headers=_base_headers(request),
    )


def create_app(
    settings: ClickHouseServerSettings, edge: http.HttpServerSettings | None = None
) -> web.Application:
    """The embedded server's aiohttp application (engine opened by a cleanup context); with
    ``edge``, its connections are held to the services' head and body timeouts and header
    limits (``infra.http``)."""
    # Request bodies are decompressed by the server itself (lz4 included, size limit applied to
    # the decompressed bytes), so aiohttp must hand them over as sent.
    handler_args: dict[str, Any] = {"auto_decompress": False}
    if edge is not None:
        handler_args = {**http.handler_args(edge), **handler_args}
    app = web.Application(
        client_max_size=settings.clickhouse_server_max_body_bytes,
        handler_args=handler_args,
        middlewares=[body_deadline] if edge is not None else [],
    )
    app[settings_key] = settings
    if edge is not None:
        app[edge_key] = edge
    app.cleanup_ctx.append(engine_context)
    app.router.add_route("GET", "/ping", ping)
    app.router.add_route("HEAD", "/ping", ping)
    app.router.add_route("*", "/", query)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="modelgate clickhouse", description="the embedded ClickHouse HTTP server (chdb)"
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8123)")
    parser.add_argument(
        "--data-dir", type=Path, help="data directory (default .modelgate/clickhouse)"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """``modelgate clickhouse``: serve ClickHouse's HTTP interface until SIGTERM/SIGINT."""
    args = parse_args(argv)
    overrides: dict[str, object] = {}
    if args.host:
        overrides["clickhouse_server_host"] = args.host
    if args.port:
        overrides["clickhouse_server_port"] = args.port
    if args.data_dir:
        overrides["clickhouse_server_data_dir"] = args.data_dir
    settings = ClickHouseServerSettings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level)
    tune_gc(settings.gc_gen0_threshold)
    # The services' bounds (MODELGATE_HTTP_*): head and body timeouts, header limits, a cap on
    # open connections overall and per client address; edge errors in ClickHouse's shape.
    edge = http.HttpServerSettings()
    app = create_app(settings, edge)
    http.run_app(
        app,
        settings.clickhouse_server_host,
        settings.clickhouse_server_port,
        edge,
        render_error=clickhouse_error_renderer(app),
        # A client that goes away cancels its request, so its query stops at the next block.
        handler_cancellation=True,
    )
    return 0
