"""The embedded ClickHouse server (``modelgate clickhouse``) seen through clickhouse-connect's
own clients, exactly as every service and analyst sees it."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import clickhouse_connect
import numpy as np
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from infra.clickhouse import create_async_client, create_client
from infra.clickhouse_server.protocol import BlockDecoder, compress_blocks
from tests.services import EmbeddedClickHouse

pytestmark = pytest.mark.integration

ROWS = 100_000


def _with_user(url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _plain(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}/"


def _http(
    url: str,
    query: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
):
    """One raw HTTP request (for what clients hide: statuses and headers), as the URL's user
    unless the headers name one."""
    parts = urllib.parse.urlsplit(url)
    credentials = {
        "X-ClickHouse-User": urllib.parse.unquote(parts.username or "default"),
        "X-ClickHouse-Key": urllib.parse.unquote(parts.password or ""),
    }
    if headers and "X-ClickHouse-User" in headers:
        credentials = {}
    request = urllib.request.Request(
        _plain(url) + "?" + urllib.parse.urlencode({"query": query, **(params or {})}),
        data=body or None,
        headers={**credentials, **(headers or {})},
        method="POST" if body else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def client(clickhouse_server: str, ch_database: str) -> Iterator[clickhouse_connect.driver.Client]:
    c = create_client(clickhouse_server, ch_database)
    yield c
    c.close()


def _create_values_table(client) -> None:
    client.command(
        "CREATE TABLE vals (id UInt32, x Float64, tag LowCardinality(String)) "
        "ENGINE = MergeTree ORDER BY id"
    )


def _columns(n: int) -> list:
    ids = np.arange(n, dtype=np.uint32)
    return [ids, ids.astype(np.float64), [f"t{i % 5}" for i in range(n)]]


def test_sync_client_inserts_100k_rows_and_reads_count_quantiles_and_dataframe(client) -> None:
    _create_values_table(client)
    summary = client.insert(
        "vals", _columns(ROWS), column_names=["id", "x", "tag"], column_oriented=True
    )

    assert summary.written_rows == ROWS
    assert client.query("SELECT count() FROM vals").result_rows == [(ROWS,)]
    (quantiles,) = client.query("SELECT quantiles(0.5, 0.99)(x) FROM vals").result_rows[0]
    assert quantiles[0] == pytest.approx(ROWS / 2, rel=0.03)
    assert quantiles[1] == pytest.approx(ROWS * 0.99, rel=0.03)
    frame = client.query_df("SELECT id, x, tag FROM vals ORDER BY id")
    assert frame.shape == (ROWS, 3)
    assert frame["x"].sum() == pytest.approx(ROWS * (ROWS - 1) / 2)
    assert set(frame["tag"]) == {f"t{i}" for i in range(5)}


async def test_async_client_inserts_100k_rows_and_reads_count_quantiles_and_dataframe(
    clickhouse_server: str, ch_database: str
) -> None:
    client = await create_async_client(clickhouse_server, ch_database)
    try:
        await client.command(
            "CREATE TABLE vals (id UInt32, x Float64, tag LowCardinality(String)) "
            "ENGINE = MergeTree ORDER BY id"
        )
        await client.insert(
            "vals", _columns(ROWS), column_names=["id", "x", "tag"], column_oriented=True
        )
        assert (await client.query("SELECT count() FROM vals")).result_rows == [(ROWS,)]
        result = await client.query("SELECT quantiles(0.5, 0.99)(x) FROM vals")
        assert result.result_rows[0][0][0] == pytest.approx(ROWS / 2, rel=0.03)
        frame = await client.query_df("SELECT id, tag FROM vals WHERE id < 1000")
        assert frame.shape == (1000, 2)
    finally:
        await client.close()


def test_large_native_results_stream_to_the_client(client) -> None:
    """300k rows leave as a stream of Native blocks the client reads block by block."""
    with client.query_row_block_stream(
        "SELECT number, toString(number) FROM numbers(300000)"
    ) as stream:
        blocks = [len(block) for block in stream]
    assert sum(blocks) == 300_000
    assert len(blocks) > 1


def test_malformed_query_raises_database_error_with_clickhouse_code(client) -> None:
    with pytest.raises(DatabaseError) as syntax:
        client.query("SELEC 1")
    assert syntax.value.code == 62
    assert "SYNTAX_ERROR" in str(syntax.value)
    with pytest.raises(DatabaseError) as unknown:
        client.command("SELECT * FROM no_such_table")
    assert unknown.value.code == 60


def test_errors_carry_clickhouse_status_header_and_body(clickhouse_server: str) -> None:
    status, headers, body = _http(clickhouse_server, "SELECT * FROM default.no_such_table")
    assert status == 404
    assert headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception:")
    status, headers, body = _http(clickhouse_server, "SELECT 1 +")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")


def test_successful_responses_carry_format_timezone_query_id_and_summary(
    clickhouse_server: str,
) -> None:
    query_id = uuid.uuid4().hex
    status, headers, body = _http(
        clickhouse_server,
        "SELECT number FROM numbers(10) FORMAT JSONEachRow",
        headers={"X-ClickHouse-Query-Id": query_id},
    )
    assert status == 200
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Query-Id"] == query_id
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert summary["result_rows"] == "10"
    assert len(body.splitlines()) == 10


def test_commands_without_a_result_return_the_write_summary(client) -> None:
    """ClickHouse sends no X-ClickHouse-Format for DDL/INSERT; clients then return a summary."""
    client.command("CREATE TABLE nums (x UInt64) ENGINE = MergeTree ORDER BY x")
    summary = client.command("INSERT INTO nums SELECT number FROM numbers(500)")
    assert summary.written_rows == 500
    assert client.command("SELECT count() FROM nums") == 500


def test_server_side_parameters_are_bound(client) -> None:
    result = client.query(
        "SELECT {x:UInt32} * 2, {name:String}", parameters={"x": 21, "name": "it's"}
    )
    assert result.result_rows == [(42, "it's")]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "lz4"])
def test_compressed_request_bodies_are_inserted(
    clickhouse_server: str, ch_database: str, compression: str
) -> None:
    """clickhouse-connect compresses inserts with Content-Encoding; the rows all arrive."""
    client = clickhouse_connect.get_client(
        dsn=clickhouse_server, database=ch_database, compress=compression
    )
    try:
        _create_values_table(client)
        client.insert(
            "vals", _columns(20_000), column_names=["id", "x", "tag"], column_oriented=True
        )
        assert client.query("SELECT count(), sum(id) FROM vals").result_rows == [
            (20_000, 20_000 * 19_999 // 2)
        ]
    finally:
        client.close()


def test_query_split_between_url_and_gzip_body_runs_as_one(clickhouse_server: str) -> None:
    status, _, body = _http(
        clickhouse_server, "SELECT 40 +", gzip.compress(b"2"), {"Content-Encoding": "gzip"}
    )
    assert (status, body) == (200, b"42\n")


def test_clickhouse_internal_block_compression_both_ways(clickhouse_server: str, client) -> None:
    """``decompress=1`` bodies and ``compress=1`` results (JDBC tools' default) work."""
    client.command("CREATE TABLE blocks (x UInt32) ENGINE = MergeTree ORDER BY x")
    rows = b"".join(b"%d\n" % i for i in range(5000))
    status, _, _ = _http(
        clickhouse_server,
        f"INSERT INTO {client.database}.blocks FORMAT TSV",
        compress_blocks(rows),
        params={"decompress": "1"},
    )
    assert status == 200
    status, _, body = _http(
        clickhouse_server,
        f"SELECT x FROM {client.database}.blocks ORDER BY x",
        params={"compress": "1"},
    )
    decoder = BlockDecoder()
    assert (status, decoder.feed(body) + decoder.finish()) == (200, rows)
    corrupted = bytearray(compress_blocks(b"SELECT 1"))
    corrupted[0] ^= 0xFF
    status, headers, _ = _http(clickhouse_server, "", bytes(corrupted), params={"decompress": "1"})
    assert headers["X-ClickHouse-Exception-Code"] == "40"


def test_read_only_user_reads_but_cannot_insert_or_create(clickhouse_server: str, client) -> None:
    _create_values_table(client)
    client.insert("vals", _columns(10), column_names=["id", "x", "tag"], column_oriented=True)
    database = client.database
    analyst = create_client(_with_user(clickhouse_server, "analyst", "analyst"), database)
    try:
        assert analyst.query("SELECT count() FROM vals").result_rows == [(10,)]
        with pytest.raises(DatabaseError) as insert:
            analyst.insert(
                "vals", _columns(1), column_names=["id", "x", "tag"], column_oriented=True
            )
        assert insert.value.code == 164
        with pytest.raises(DatabaseError) as create:
            analyst.command("CREATE TABLE forbidden (x UInt8) ENGINE = Memory")
        assert create.value.code == 164
        # clickhouse-connect itself refuses to send readonly=0 here; ask over raw HTTP.
        status, headers, _ = _http(
            clickhouse_server,
            "SELECT 1",
            headers={"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": "analyst"},
            params={"readonly": "0"},
        )
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "164")
    finally:
        analyst.close()
    assert client.query("SELECT count() FROM vals").result_rows == [(10,)]
    assert client.query("EXISTS TABLE forbidden").result_rows == [(0,)]


def test_wrong_password_is_refused_with_authentication_failed(clickhouse_server: str) -> None:
    with pytest.raises(DatabaseError) as refused:
        create_client(_with_user(clickhouse_server, "analyst", "wrong"))
    assert refused.value.code == 516


def test_request_settings_and_session_statements_do_not_leak_to_later_requests(client) -> None:
    """Pooled engine connections are reset between requests."""
    default = client.query("SELECT getSetting('max_block_size')").result_rows[0][0]
    changed = client.query("SELECT getSetting('max_block_size')", settings={"max_block_size": 1234})
    assert changed.result_rows == [(1234,)]
    client.command("SET max_block_size = 777")
    client.command("USE system")
    for _ in range(3):
        assert client.query("SELECT getSetting('max_block_size')").result_rows == [(default,)]
        assert client.query("SELECT currentDatabase()").result_rows == [(client.database,)]


def test_unknown_or_malformed_setting_names_are_refused(clickhouse_server: str) -> None:
    for name in ("no_such_setting", "max_threads = 1, readonly"):
        status, headers, _ = _http(clickhouse_server, "SELECT 1", b" ", params={name: "0"})
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "115"), name


def test_concurrent_queries_run_in_parallel(clickhouse_server: str) -> None:
    """Two heavy queries sent together execute at the same time: their windows, as measured
    by the engine itself (nowInBlock64), overlap. A server serialising queries fails this."""
    sql = (
        "SELECT min(t), max(t) FROM (SELECT nowInBlock64(6) AS t FROM numbers(40000000) "
        "WHERE sipHash64(toString(number)) % 7 = 1) SETTINGS max_threads = 1"
    )
    windows: list[tuple[datetime, datetime]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        c = create_client(clickhouse_server)
        try:
            barrier.wait()
            windows.append(c.query(sql).result_rows[0])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    (start_a, end_a), (start_b, end_b) = windows
    assert start_a < end_b and start_b < end_a, windows


def test_rows_survive_a_restart_and_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    server = EmbeddedClickHouse(tmp_path / "data")
    server.start()
    try:
        c = create_client(server.url)
        c.command("CREATE DATABASE kept")
        c.command("CREATE TABLE kept.t (x UInt64) ENGINE = MergeTree ORDER BY x")
        c.insert("kept.t", [[i] for i in range(1000)], column_names=["x"])
        c.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode == 0

    server.start()
    try:
        c = create_client(server.url)
        assert c.query("SELECT count(), sum(x) FROM kept.t").result_rows == [(1000, 499_500)]
        c.close()
    finally:
        server.stop()
