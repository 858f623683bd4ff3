"""The embedded ClickHouse server's HTTP edge (issue 9, items 3 and 7): held to the services'
bounds (``infra.http``): a head timeout, a cap on open connections overall and per client
address, and edge errors written as ClickHouse writes errors (``Code: N. DB::Exception`` text
with ``X-ClickHouse-Exception-Code``), not aiohttp's plain text nor the services' JSON.

Two servers for the module: one with a 1 s head timeout, one with small connection caps.
"""

from __future__ import annotations

import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.services import EmbeddedClickHouse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PER_ADDRESS = 2
MAX_CONNECTIONS = 5


def _server(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]
) -> Iterator[EmbeddedClickHouse]:
    server = EmbeddedClickHouse(tmp_path_factory.mktemp(name) / "data", extra_env=env)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedClickHouse]:
    """A server whose connections must deliver a head, and a body, within 1 s."""
    yield from _server(
        tmp_path_factory,
        "quick",
        {"MODELGATE_HTTP_HEADER_TIMEOUT_S": "1", "MODELGATE_HTTP_BODY_TIMEOUT_S": "1"},
    )


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedClickHouse]:
    """A server with small connection caps (and a long head timeout, so held sockets stay)."""
    yield from _server(
        tmp_path_factory,
        "capped",
        {
            "MODELGATE_HTTP_HEADER_TIMEOUT_S": "60",
            "MODELGATE_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "MODELGATE_HTTP_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        },
    )


def connect(server: EmbeddedClickHouse, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", server.port), timeout=10, source_address=(source, 0)
    )
    return sock


def exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` and read the whole answer (the request says Connection: close)."""
    sock.sendall(request)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ", 2)[1]), {k.lower(): v for k, v in headers.items()}, body


def select_one(server: EmbeddedClickHouse) -> bytes:
    return (
        b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: ch\r\nConnection: close\r\n"
        b"X-ClickHouse-User: default\r\nX-ClickHouse-Key: " + server.password.encode() + b"\r\n\r\n"
    )


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """Whether the server closes ``sock`` (end of stream or reset) within ``within_s``."""
    ready, _, _ = select.select([sock], [], [], within_s)
    if not ready:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_idle_connection_without_credentials_is_closed_at_the_head_timeout(
    quick: EmbeddedClickHouse,
) -> None:
    """A connection that sends nothing is closed after the head timeout (was: 75 s)."""
    with connect(quick) as sock:
        assert closed_by_server(sock, within_s=15)


def test_head_trickled_a_byte_at_a_time_is_cut_off(quick: EmbeddedClickHouse) -> None:
    """A head sent one byte every 0.3 s never completes: the connection is closed long before
    the 60 bytes are in (was: held 75 s)."""
    with connect(quick) as sock:
        closed = False
        for byte in b"GET /?query=SELECT%201 HTTP/1.1\r\nX-Padding: " + b"a" * 30:
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed = True
                break
            if closed_by_server(sock, within_s=0.3):
                closed = True
                break
        assert closed


def test_body_that_stops_arriving_is_a_clickhouse_socket_timeout(quick: EmbeddedClickHouse) -> None:
    """An INSERT whose body stops halfway is answered SOCKET_TIMEOUT (209) in ClickHouse's
    shape once the body timeout passes (was: held with no limit)."""
    with connect(quick) as sock:
        sock.settimeout(15)
        head = (
            b"POST /?query=INSERT%20INTO%20FUNCTION%20null('x%20String')%20FORMAT%20TSV "
            b"HTTP/1.1\r\nHost: ch\r\nConnection: close\r\nContent-Length: 100\r\n"
            b"X-ClickHouse-User: default\r\nX-ClickHouse-Key: "
        )
        status, headers, body = exchange(sock, head + quick.password.encode() + b"\r\n\r\nabc\n")
    assert headers["x-clickhouse-exception-code"] == "209", (status, body)
    assert body.startswith(b"Code: 209. DB::Exception: Timeout exceeded while reading")


def test_the_server_still_answers_a_prompt_client(quick: EmbeddedClickHouse) -> None:
    with connect(quick) as sock:
        status, _, body = exchange(sock, select_one(quick))
    assert (status, body) == (200, b"1\n")


def test_one_address_over_its_cap_gets_a_clickhouse_503_and_others_are_served(
    capped: EmbeddedClickHouse,
) -> None:
    """Past ``PER_ADDRESS`` open connections, that address's next one is answered 503 with
    ClickHouse's error text and code header (NO_FREE_CONNECTION); another address is served;
    past ``MAX_CONNECTIONS`` in all, every address gets the 503."""
    held = [connect(capped) for _ in range(PER_ADDRESS)]
    try:
        time.sleep(0.2)
        with connect(capped) as sock:
            status, headers, body = exchange(sock, select_one(capped))
        assert status == 503, body
        assert headers["x-clickhouse-exception-code"] == "203"
        assert headers["retry-after"] == "1"
        assert body.startswith(b"Code: 203. DB::Exception: too many open connections from this")
        with connect(capped, "127.0.0.2") as sock:
            assert exchange(sock, select_one(capped))[::2] == (200, b"1\n")
        held += [connect(capped, "127.0.0.2"), connect(capped, "127.0.0.3")]
        held.append(connect(capped, "127.0.0.3"))
        time.sleep(0.2)
        with connect(capped, "127.0.0.4") as sock:
            status, headers, body = exchange(sock, select_one(capped))
        assert status == 503 and headers["x-clickhouse-exception-code"] == "203", body
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the slots come back once the held sockets are closed
        with connect(capped) as sock:
            status, _, body = exchange(sock, select_one(capped))
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (status, body) == (200, b"1\n")


def test_parser_errors_are_clickhouse_errors_not_plain_text(capped: EmbeddedClickHouse) -> None:
    """A 9 KB header field: 431 with ``Code: N. DB::Exception`` text and the code header (was
    aiohttp's plain-text 400 without either)."""
    with connect(capped) as sock:
        status, headers, body = exchange(
            sock, b"GET /ping HTTP/1.1\r\nHost: ch\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
        )
    assert status == 431, body
    assert headers["x-clickhouse-exception-code"] == "27"
    assert body.startswith(b"Code: 27. DB::Exception: a request line or header field is longer")


def test_urllib_client_over_the_cap_reads_the_503(capped: EmbeddedClickHouse) -> None:
    """The refusal reaches a client that sends its request (with a body) right away: urllib
    raises HTTPError 503, never 'Remote end closed connection without response' or a reset."""
    held = [connect(capped) for _ in range(PER_ADDRESS)]
    try:
        time.sleep(0.2)
        outcomes = []
        for _ in range(10):
            request = urllib.request.Request(
                f"http://127.0.0.1:{capped.port}/", data=b"SELECT 1 -- " + b"x" * (1 << 20)
            )
            try:
                urllib.request.urlopen(request, timeout=10).close()
                outcomes.append("answered")
            except urllib.error.HTTPError as exc:
                outcomes.append(str(exc.code))
            except OSError as exc:
                outcomes.append(repr(exc))
    finally:
        for sock in held:
            sock.close()
    assert outcomes == ["503"] * 10
