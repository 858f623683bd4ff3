"""The embedded ClickHouse server answers as ClickHouse does where clients depend on it (issue 9,
item 10): every row of an ArrowStream, requests and sessions that never see each other's state,
errors after the headers that clients detect, string settings given as numbers, multi-statements
refused, and clients that go away cancelled quietly."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, StreamFailureError

from infra.clickhouse import create_async_client, create_client, parse_url
from tests.services import EmbeddedClickHouse

pytestmark = pytest.mark.integration

ARROW_ROWS = 200_000
UNKNOWN_TABLE = "code: 60"


@pytest.fixture
def client(clickhouse_server: str, ch_database: str) -> Iterator[clickhouse_connect.driver.Client]:
    c = create_client(clickhouse_server, ch_database)  # sessionless, as the services' clients
    yield c
    c.close()


def _session_client(url: str, database: str, session_id: str) -> clickhouse_connect.driver.Client:
    target = parse_url(url, database)
    return clickhouse_connect.get_client(
        host=target.host,
        port=target.port,
        username=target.username,
        password=target.password,
        database=database,
        session_id=session_id,
    )


# One thread, small blocks: the rows before the failing one come out first, in order, so the
# error always follows more than a MiB of output (with several threads on a loaded machine the
# failing block could be computed first and the error come before any header: a 500).
IN_ORDER = "SETTINGS max_threads = 1, max_block_size = 8192"


def _raw(url: str, query: str, params: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """One raw POST (statuses, headers and bytes the clients hide)."""
    target = parse_url(url)
    request = urllib.request.Request(
        f"http://{target.host}:{target.port}/?" + urllib.parse.urlencode(params or {}),
        data=query.encode(),
        headers={"X-ClickHouse-User": target.username, "X-ClickHouse-Key": target.password},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = bytearray()
            try:
                while chunk := response.read(1 << 16):
                    body += chunk
            except http.client.IncompleteRead as broken:  # on purpose, after an error block
                body += broken.partial
            return response.status, dict(response.headers), bytes(body)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_arrow_stream_of_200k_rows_returns_every_row(client) -> None:
    """query_arrow_stream returns all 200,000 rows (the engine's chunks join into one stream),
    not only the first block's 16,384."""
    sql = f"SELECT number, toString(number) AS s FROM numbers({ARROW_ROWS})"
    rows = total = 0
    with client.query_arrow_stream(sql) as stream:
        for batch in stream:
            rows += batch.num_rows
            total += sum(batch.column("number").to_pylist())
    assert rows == ARROW_ROWS
    assert total == ARROW_ROWS * (ARROW_ROWS - 1) // 2


async def test_async_query_arrow_returns_every_row(clickhouse_server: str, ch_database) -> None:
    """The async client's query_arrow (read over ArrowStream) gets the whole table."""
    client = await create_async_client(clickhouse_server, ch_database)
    try:
        table = await client.query_arrow(f"SELECT number FROM numbers({ARROW_ROWS})")
    finally:
        await client.close()
    assert table.num_rows == ARROW_ROWS


def test_temporary_table_of_a_sessionless_request_is_not_seen_by_later_requests(client) -> None:
    """A temporary table made without session_id lives as long as its request (as in ClickHouse):
    none of the following requests, whichever pooled connection serves them, can read it."""
    client.command("CREATE TEMPORARY TABLE left_behind (x UInt8)")
    for _ in range(12):  # more than the pool's connections
        with pytest.raises(DatabaseError) as caught:
            client.query("SELECT count() FROM left_behind")
        assert UNKNOWN_TABLE in str(caught.value).lower()


def test_settings_set_without_a_session_end_with_the_request(client) -> None:
    """SET in a sessionless request does not change what the next requests run with."""
    client.command("SET max_block_size = 7")
    for _ in range(12):
        assert client.command("SELECT getSetting('max_block_size')") != 7


def test_a_session_keeps_its_state_apart_from_other_sessions(
    clickhouse_server: str, ch_database: str, client
) -> None:
    """session_id keeps a temporary table across requests of that session only: another session
    and sessionless requests do not see it, and close_session=1 ends it."""
    session_id = f"s-{uuid.uuid4()}"
    session = _session_client(clickhouse_server, ch_database, session_id)
    other = _session_client(clickhouse_server, ch_database, f"s-{uuid.uuid4()}")
    try:
        session.command("CREATE TEMPORARY TABLE mine (id UInt32, v String)")
        session.command("INSERT INTO mine VALUES (1, 'a'), (2, 'b')")
        assert session.query("SELECT id, v FROM mine ORDER BY id").result_rows == [
            (1, "a"),
            (2, "b"),
        ]
        for stranger in (other, client):
            with pytest.raises(DatabaseError) as caught:
                stranger.query("SELECT count() FROM mine")
            assert UNKNOWN_TABLE in str(caught.value).lower()
        status, _, _ = _raw(
            clickhouse_server, "SELECT 1", {"session_id": session_id, "close_session": "1"}
        )
        assert status == 200
        with pytest.raises(DatabaseError) as caught:
            session.query("SELECT count() FROM mine")
        assert UNKNOWN_TABLE in str(caught.value).lower()
    finally:
        session.close()
        other.close()


def test_a_session_runs_one_request_at_a_time(clickhouse_server: str, ch_database: str) -> None:
    """Two requests at once in one session: one is refused with SESSION_IS_LOCKED (373)."""
    session_id = f"s-{uuid.uuid4()}"
    clients = [_session_client(clickhouse_server, ch_database, session_id) for _ in range(2)]
    errors: list[Exception] = []

    def run(c) -> None:
        try:
            c.command("SELECT sleep(1)")
        except DatabaseError as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for c in clients:
        c.close()
    assert len(errors) == 1
    assert "373" in str(errors[0]) and "locked by a concurrent client" in str(errors[0])


def test_an_error_after_the_first_mib_of_a_stream_is_raised_by_the_client(client) -> None:
    """An error after the headers are sent (status 200) is raised by clickhouse-connect, not
    returned as a short result."""
    sql = (
        "SELECT number, repeat('x', 50) FROM numbers(300000) WHERE throwIf(number = 200000) = 0 "
        + IN_ORDER
    )
    with pytest.raises((StreamFailureError, DatabaseError)) as caught:
        with client.query_rows_stream(sql) as stream:
            for _ in stream:
                pass
    assert "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO" in str(caught.value)


def test_an_error_after_the_headers_is_written_between_tagged_exception_markers(
    clickhouse_server: str,
) -> None:
    """The stream carries X-ClickHouse-Exception-Tag and ends with ClickHouse's block:
    __exception__, the tag, the Code: N text, its length and the tag again."""
    sql = (
        "SELECT number, repeat('x', 50) FROM numbers(300000) "
        f"WHERE throwIf(number = 200000) = 0 {IN_ORDER} FORMAT TabSeparated"
    )
    status, headers, body = _raw(clickhouse_server, sql)
    assert status == 200
    tag = headers["X-ClickHouse-Exception-Tag"]
    assert len(tag) == 16 and tag.isalnum()
    assert len(body) > 1 << 20
    tail = body[-2000:]
    assert f"__exception__\r\n{tag}\r\nCode: 395.".encode() in tail
    message = tail[tail.index(b"Code: 395.") :]
    text, _, footer = message.partition(b"\n")
    assert footer == f"{len(text) + 1} {tag}\r\n__exception__\r\n".encode()


def test_a_number_for_a_string_setting_is_accepted(client) -> None:
    """A setting of type String given as a number (format_csv_delimiter=1) is applied, as
    ClickHouse parses every URL setting by its type."""
    result = client.query(
        "SELECT getSetting('format_csv_delimiter')", settings={"format_csv_delimiter": 1}
    )
    assert result.result_rows == [("1",)]


def test_a_multi_statement_body_is_refused_and_runs_nothing(
    clickhouse_server: str, ch_database: str, client
) -> None:
    """Several statements in one request: 400 with ClickHouse's SYNTAX_ERROR (62), and none of
    them ran."""
    status, headers, body = _raw(
        clickhouse_server,
        "CREATE TABLE one (x UInt8) ENGINE = Memory; CREATE TABLE two (x UInt8) ENGINE = Memory",
        {"database": ch_database},
    )
    assert status == 400
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    assert b"Multi-statements are not allowed" in body
    assert client.command("EXISTS TABLE one") == 0
    assert client.command("EXISTS TABLE two") == 0
    # A single statement with a trailing ';' and comment still runs.
    assert client.command("SELECT 13; -- trailing") == 13


def _start_slow_query(port: int, password: str, query_id: str, read_bytes: int) -> None:
    """Send a slow streaming query over a raw socket, read ``read_bytes`` of it, go away."""
    auth = base64.b64encode(f"default:{password}".encode()).decode()
    body = (
        b"SELECT sleepEachRow(0.001), number, repeat('x', 200) FROM numbers(100000) "
        b"SETTINGS max_block_size = 100 FORMAT TabSeparated"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST /?query_id={query_id} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = 0
        deadline = time.monotonic() + 20
        while received < read_bytes and time.monotonic() < deadline:
            received += len(sock.recv(1 << 16))
        time.sleep(0.5)


@pytest.mark.parametrize("read_bytes", [0, 200_000], ids=["before-headers", "mid-stream"])
def test_a_client_that_goes_away_is_logged_in_one_line_and_its_query_cancelled(
    tmp_path: Path, read_bytes: int
) -> None:
    """A client that disconnects (before or after the result started) leaves one log line, no
    traceback, and its query stops instead of running on for nobody."""
    server = EmbeddedClickHouse(tmp_path / "data")
    server.start()
    try:
        query_id = f"gone-{uuid.uuid4()}"
        _start_slow_query(server.port, server.password, query_id, read_bytes)
        deadline = time.monotonic() + 20
        log = ""
        while time.monotonic() < deadline and "client went away" not in log:
            time.sleep(0.2)
            log = server.log_path.read_text(errors="replace")
        assert log.count("client went away") == 1
        c = create_client(server.url)
        try:
            running = 1
            while time.monotonic() < deadline and running:
                running = c.command(
                    f"SELECT count() FROM system.processes WHERE query_id = '{query_id}'"
                )
                time.sleep(0.2)
            assert running == 0
        finally:
            c.close()
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text(errors="replace")


def test_binary_bytes_in_the_query_reach_the_engine_as_sent(client) -> None:
    """A bytes parameter (raw Parquet, not UTF-8) inlined by clickhouse-connect between $name$
    markers is read by the engine unchanged."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"movie": ["12 Angry Men", "Alien"], "rating": [9.0, 8.5]}), sink)
    data = sink.getvalue().to_pybytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    result = client.query(
        "SELECT movie, rating FROM format(Parquet, $pq$) ORDER BY movie",
        parameters={"$pq$": data},
    )
    assert result.result_rows == [("12 Angry Men", 9.0), ("Alien", 8.5)]
