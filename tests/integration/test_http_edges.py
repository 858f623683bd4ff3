"""The HTTP edges of ingress and management-api (issue 9, items 3, 7 and 8), served as in
production: ``infra.http.start_app`` (the runner ``modelgate ingress`` / ``management-api`` use),
against a real broker, predictor and ClickHouse.

Decompression bombs, slow clients, too many connections, client aborts, out-of-range numbers,
huge error lists, parser errors, odd paths: each answers a JSON error, never a 5xx or plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from infra import http
from ingress.app import create_app as create_ingress
from management_api.app import create_app as create_management
from schemas import ErrorBody
from tests.management_support import ADMIN_PASSWORD, clickhouse_db, management_settings
from tests.prediction_fixtures import (
    IRIS_ROW,
    PredictionWorld,
    collect_request_events,
    ingress_settings,
    wait_until_ready,
)
from tests.services import free_port

__all__ = ["clickhouse_db"]  # the fixture, imported for the management API

pytestmark = pytest.mark.timeout(120)

BOMB_MEMBER = gzip.compress(b"\0" * (1024 * 1024), compresslevel=9)
BOMB = BOMB_MEMBER * 900  # ~0.9 MB of gzip members that decode to 900 MiB
EDGE = {"http_header_timeout_s": 1.0, "http_body_timeout_s": 1.0}
Serve = Callable[..., Awaitable[str]]


def assert_error(status: int, raw: bytes, expected_status: int, code: str) -> dict[str, Any]:
    """The documented error shape, with this status and code; returns the details."""
    assert status == expected_status, raw[:300]
    body = orjson.loads(raw)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    parsed = ErrorBody.model_validate(body)
    assert parsed.error.code == code, body
    assert "Traceback" not in raw.decode(errors="replace")
    return parsed.error.details


async def raw_exchange(url: str, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes, read the whole answer (the server closes); status and body."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application, Any], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, settings: Any) -> str:
        port = free_port()
        runners.append(await http.start_app(app, "127.0.0.1", port, settings, shutdown_timeout=2))
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def ingress(
    world: PredictionWorld,
    start_worker: Any,
    serve: Any,
    namespace: str,
    rabbitmq_url: str,
    model_store: Path,
) -> AsyncIterator[Serve]:
    """Starts an ingress (settings overridable) with one predictor behind it; yields its URL."""
    await start_worker()

    async def start(**overrides: Any) -> str:
        settings = ingress_settings(namespace, rabbitmq_url, model_store, **{**EDGE, **overrides})
        url: str = await serve(create_ingress(settings), settings)
        await wait_until_ready(url)
        return url

    yield start


@pytest.fixture
async def management(
    tmp_path: Path,
    rabbitmq_url: str,
    clickhouse_server: str,
    clickhouse_db: str,
    namespace: str,
    serve: Any,
) -> str:
    settings = management_settings(
        tmp_path,
        namespace=namespace,
        rabbitmq_url=rabbitmq_url,
        clickhouse_url=clickhouse_server,
        clickhouse_database=clickhouse_db,
        **EDGE,
    )
    url: str = await serve(create_management(settings), settings)
    return url


async def post(
    session: aiohttp.ClientSession, url: str, data: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(url, data=data, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


# --- item 3: decompression bombs, slow clients, too many connections ------------------------


async def test_gzip_bomb_is_answered_413_while_a_concurrent_request_is_answered(
    world: PredictionWorld, ingress: Serve
) -> None:
    url = await ingress()
    headers = {
        "X-API-Key": world.keys["iris"],
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    async with aiohttp.ClientSession() as session:
        bomb = asyncio.create_task(post(session, f"{url}/api/predict/iris", BOMB, headers))
        other = asyncio.create_task(
            post(
                session,
                f"{url}/api/predict/iris",
                orjson.dumps(IRIS_ROW),
                {**headers, "Content-Encoding": "identity"},
            )
        )
        (status, _, raw), (other_status, _, other_raw) = await asyncio.gather(bomb, other)
        details = assert_error(status, raw, 413, "PAYLOAD_TOO_LARGE")
        assert details["max_bytes"] == 1024 * 1024
        assert other_status == 200 and "prediction" in orjson.loads(other_raw)
        # A small gzip body is inflated and predicted.
        status, _, raw = await post(
            session, f"{url}/api/predict/iris", gzip.compress(orjson.dumps(IRIS_ROW)), headers
        )
        assert status == 200, raw


async def test_management_gzip_bomb_is_answered_413(management: str) -> None:
    async with aiohttp.ClientSession() as session:
        status, _, raw = await post(
            session,
            f"{management}/api/auth/token",
            BOMB,
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert_error(status, raw, 413, "PAYLOAD_TOO_LARGE")
        async with session.get(f"{management}/health") as response:
            assert response.status in (200, 503)  # answered, whatever the dependencies say


async def trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, byte: bytes, rounds: int
) -> tuple[bytes, bool]:
    """Send ``byte`` every 0.1 s (``rounds`` times at most) until the server closes: what it
    answered meanwhile, and whether it closed."""
    answer = b""
    closed = False
    for _ in range(rounds):
        try:
            writer.write(byte)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(4096), 0.1)
        except TimeoutError:
            continue
        except ConnectionError:
            closed = True
            break
        if data == b"":
            closed = True
            break
        answer += data
    writer.close()
    return answer, closed


async def test_slow_client_sending_its_head_byte_by_byte_is_cut_off(ingress: Serve) -> None:
    url = await ingress()
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /api/predict/iris HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    # 10 s of one byte every 0.1 s; the head timeout is 1 s
    _, closed = await trickle(reader, writer, b"a", rounds=100)
    assert closed, "the server kept a connection whose head never ended"


async def test_slow_body_is_answered_408(world: PredictionWorld, ingress: Serve) -> None:
    url = await ingress()
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/predict/iris HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-API-Key: {world.keys['iris']}\r\nContent-Length: 200\r\n\r\n{{".encode()
    )
    answer = b""
    for _ in range(50):  # one byte every 0.1 s; the body timeout is 1 s
        with contextlib.suppress(ConnectionError):
            writer.write(b" ")
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            answer += await asyncio.wait_for(reader.read(4096), 0.1)
        if b"\r\n\r\n" in answer:
            break
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert orjson.loads(body[: body.rindex(b"}") + 1])["error"]["code"] == "REQUEST_TIMEOUT"


async def test_a_preflight_with_a_body_still_arriving_is_cut_off(ingress: Serve) -> None:
    """A CORS preflight is answered before anything reads the body; a body still trickling in
    after the 204 must not hold the connection past the body timeout."""
    url = await ingress()
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"OPTIONS /api/predict/iris HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
        b"Access-Control-Request-Method: POST\r\nContent-Length: 1000\r\n\r\n{"
    )
    # one byte every 0.1 s for 8 s at most; the body timeout is 1 s
    answer, closed = await trickle(reader, writer, b" ", rounds=80)
    assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
    assert closed, "a preflight's trickling body held the connection past the body timeout"


async def test_connections_over_the_cap_get_503_json_and_the_service_still_answers(
    ingress: Serve,
) -> None:
    url = await ingress(http_max_connections=2, http_header_timeout_s=30.0)
    host, port = url.removeprefix("http://").split(":")
    idle = [await asyncio.open_connection(host, int(port)) for _ in range(2)]
    await asyncio.sleep(0.2)
    status, body = await raw_exchange(url, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_error(status, body, 503, "SERVICE_UNAVAILABLE")
    for _, writer in idle:
        writer.close()
    await asyncio.sleep(0.3)
    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as response:
        assert response.status == 200


async def read_answer(
    port: int, request: bytes, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one exchange from ``source``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])
    }
    return int(lines[0].split(" ", 2)[1]), headers, body


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def test_one_address_cannot_take_the_whole_connection_budget(ingress: Serve) -> None:
    """Past its per-address cap, one client address's new connections get 503 JSON with
    Retry-After, while another address (127.0.0.2) is still served under the global cap."""
    url = await ingress(
        http_max_connections=50, http_max_connections_per_address=3, http_header_timeout_s=30.0
    )
    port = int(url.rsplit(":", 1)[1])
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        await asyncio.sleep(0.2)
        status, headers, body = await read_answer(port, HEALTH)
        assert_error(status, body, 503, "SERVICE_UNAVAILABLE")
        assert headers["retry-after"] == "1"
        status, _, body = await read_answer(port, HEALTH, source="127.0.0.2")
        assert status == 200, body
    finally:
        for _, writer in idle:
            writer.close()
    await asyncio.sleep(0.3)
    assert (await read_answer(port, HEALTH))[0] == 200


async def test_a_refused_client_that_sends_its_request_at_once_reads_the_503(
    ingress: Serve,
) -> None:
    """The cap's 503 reaches a client that writes a 1 MiB request right away (urllib): no
    'Remote end closed connection without response', no reset or broken pipe, 20 times out of
    20 (the socket used to be closed at once, and the client's bytes reset it)."""
    url = await ingress(http_max_connections=1, http_header_timeout_s=30.0)
    host, port = url.removeprefix("http://").split(":")
    idle = await asyncio.open_connection(host, int(port))

    def attempt() -> str:
        request = urllib.request.Request(f"{url}/health", data=b"x" * (1 << 20))
        try:
            urllib.request.urlopen(request, timeout=10).close()
            return "answered"
        except urllib.error.HTTPError as exc:
            return str(exc.code)
        except OSError as exc:
            return repr(exc)

    try:
        await asyncio.sleep(0.2)
        outcomes = [await asyncio.to_thread(attempt) for _ in range(20)]
    finally:
        idle[1].close()
    assert outcomes == ["503"] * 20


# --- item 7: edges that answered 5xx or the wrong shape ----------------------------------------


async def test_client_disconnecting_mid_body_is_recorded_as_499_not_500(
    world: PredictionWorld, ingress: Serve, topology: Any
) -> None:
    url = await ingress()
    host, port = url.removeprefix("http://").split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/predict/iris HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f'X-API-Key: {world.keys["iris"]}\r\nContent-Length: 500\r\n\r\n{{"sepal'.encode()
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    events = await collect_request_events(topology, 1)
    assert [(e["status_code"], e["error_code"]) for e in events] == [(499, "CLIENT_CLOSED_REQUEST")]


async def test_out_of_range_feature_is_a_400_naming_the_field(
    world: PredictionWorld, ingress: Serve
) -> None:
    url = await ingress()
    headers = {"X-API-Key": world.keys["iris"], "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        status, _, raw = await post(
            session,
            f"{url}/api/predict/iris",
            orjson.dumps({**IRIS_ROW, "petal_width": 1e308}),
            headers,
        )
    details = assert_error(status, raw, 400, "INVALID_INPUT")
    assert list(details["mistyped"]) == ["petal_width"]


async def test_error_listing_10000_unknown_fields_is_capped(
    world: PredictionWorld, ingress: Serve
) -> None:
    url = await ingress()
    headers = {"X-API-Key": world.keys["iris"], "Content-Type": "application/json"}
    row = {**IRIS_ROW, **{f"unknown_field_{i}": 1 for i in range(10_000)}}
    async with aiohttp.ClientSession() as session:
        status, _, raw = await post(session, f"{url}/api/predict/iris", orjson.dumps(row), headers)
    details = assert_error(status, raw, 400, "INVALID_INPUT")
    assert (len(details["unexpected"]), details["unexpected_count"]) == (20, 10_000)
    assert len(raw) < 4096


async def test_management_validation_errors_are_capped(management: str) -> None:
    body = {"username": "u", "password": "p", **{f"f{i}": 1 for i in range(10_000)}}
    async with aiohttp.ClientSession() as session:
        status, _, raw = await post(
            session,
            f"{management}/api/auth/token",
            orjson.dumps(body),
            {"Content-Type": "application/json"},
        )
    details = assert_error(status, raw, 400, "INVALID_INPUT")
    assert (len(details["errors"]), details["error_count"]) == (20, 10_000)


async def test_a_9kb_header_gets_431_json_from_ingress(ingress: Serve) -> None:
    url = await ingress()
    request = b"POST /api/predict/iris HTTP/1.1\r\nHost: x\r\nX-API-Key: " + b"k" * 9000
    status, body = await raw_exchange(url, request + b"\r\nContent-Length: 0\r\n\r\n")
    assert_error(status, body, 431, "HEADER_TOO_LARGE")


async def test_a_9kb_header_gets_431_json_from_management(management: str) -> None:
    request = b"GET /api/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"k" * 9000
    status, body = await raw_exchange(management, request + b"\r\n\r\n")
    assert_error(status, body, 431, "HEADER_TOO_LARGE")


async def test_a_malformed_request_gets_400_json(ingress: Serve) -> None:
    url = await ingress()
    status, body = await raw_exchange(url, b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n")
    assert_error(status, body, 400, "BAD_REQUEST")


async def test_brotli_body_gets_415_json_from_ingress(
    world: PredictionWorld, ingress: Serve
) -> None:
    url = await ingress()
    headers = {
        "X-API-Key": world.keys["iris"],
        "Content-Type": "application/json",
        "Content-Encoding": "br",
    }
    async with aiohttp.ClientSession() as session:
        status, _, raw = await post(session, f"{url}/api/predict/iris", b"\x8b\x00\x80", headers)
    details = assert_error(status, raw, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert details["content_encoding"] == "br"


async def test_brotli_body_gets_415_json_from_management(management: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "br"}
    async with aiohttp.ClientSession() as session:
        status, _, raw = await post(session, f"{management}/api/auth/token", b"\x8b\x00", headers)
    assert_error(status, raw, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_nul_byte_path_on_management_is_404_json(management: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{management}/index.html%00.js") as response,
    ):
        assert_error(response.status, await response.read(), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "path",
    [
        "/..%2f..%2fetc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/models/..%5c..%5cwin.ini",
        "/../../etc/passwd",
        "/models/%00",
        "/models//x",
        "/.env",
    ],
)
async def test_odd_paths_are_404_json_not_the_dashboard(management: str, path: str) -> None:
    """The dashboard's fallback serves index.html only for paths that look like client routes
    (segments of safe characters): encoded slashes and dots, dot segments, NUL, empty segments
    are 404 JSON (they used to get index.html 200)."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    status, body = await raw_exchange(management, request)
    assert_error(status, body, 404, "NOT_FOUND")


async def test_client_routes_still_get_the_dashboard(management: str) -> None:
    for path in ("/models", "/monitoring/3f2a-9c_1~x?tab=docs", "/login?next=%2Fmodels"):
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        status, body = await raw_exchange(management, request)
        assert status == 200 and b"<html" in body.lower(), (path, body[:200])


async def test_405_names_the_allowed_methods(management: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{management}/api/auth/token") as response,
    ):
        assert_error(response.status, await response.read(), 405, "METHOD_NOT_ALLOWED")
        assert "POST" in response.headers["Allow"]


# --- item 8: security headers ------------------------------------------------------------------


def assert_security_headers(headers: Any, csp_part: str) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert csp_part in headers["Content-Security-Policy"]


async def test_security_headers_on_ingress_answers(ingress: Serve) -> None:
    url = await ingress()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/health") as response:
            assert_security_headers(response.headers, "default-src 'none'")
        async with session.post(f"{url}/api/predict/iris", json=IRIS_ROW) as response:
            assert response.status == 401
            assert_security_headers(response.headers, "default-src 'none'")


async def test_security_headers_on_management_api_and_dashboard(management: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{management}/api/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}
        ) as response:
            assert response.status == 200
            assert_security_headers(response.headers, "default-src 'none'")
        async with session.get(f"{management}/") as response:
            assert response.status == 200 and response.content_type == "text/html"
            assert_security_headers(response.headers, "script-src 'self'")
        async with session.get(f"{management}/docs") as response:
            assert_security_headers(response.headers, "'sha256-")


async def test_head_answers_like_get_without_a_body(management: str) -> None:
    """HEAD of a GET route (dashboard, health) is 200 with GET's headers and no body, not 405."""
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/health"):
            async with session.head(f"{management}{path}") as response:
                assert response.status == 200, path
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert await response.read() == b""
