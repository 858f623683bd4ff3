"""Who may do what on the embedded ClickHouse (issue 9, item 2): the read-only analyst only
reads, on its own bounded share of the engine; nobody gets in without a password.

One embedded server for the module, with short analyst limits so that the heavy-query test is
bounded; every refusal is checked by ClickHouse's code and by its effect being absent.
"""

from __future__ import annotations

import gzip
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from infra.clickhouse import create_client
from tests.services import EmbeddedClickHouse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ANALYST_CONNECTIONS = 2
ANALYST_MAX_EXECUTION_TIME = 10
ANALYST_QUEUE_TIMEOUT = 5
ANALYST = {"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": "analyst"}
# Heavy enough to run until the analysts' max_execution_time stops it.
HEAVY = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedClickHouse]:
    server = EmbeddedClickHouse(
        tmp_path_factory.mktemp("access") / "data",
        extra_env={
            "MODELGATE_CLICKHOUSE_SERVER_ANALYST_CONNECTIONS": str(ANALYST_CONNECTIONS),
            "MODELGATE_CLICKHOUSE_SERVER_ANALYST_MAX_EXECUTION_TIME": str(
                ANALYST_MAX_EXECUTION_TIME
            ),
            "MODELGATE_CLICKHOUSE_SERVER_ANALYST_QUEUE_TIMEOUT_S": str(ANALYST_QUEUE_TIMEOUT),
        },
    )
    server.start()
    yield server
    server.stop()


def http(
    server: EmbeddedClickHouse,
    query: str,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, str, str]:
    """(status, X-ClickHouse-Exception-Code or '', body) of one POST with the query as body."""
    url = f"http://127.0.0.1:{server.port}/?" + urllib.parse.urlencode(params or {})
    request = urllib.request.Request(url, data=query.encode(), headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, "", response.read().decode()
    except urllib.error.HTTPError as error:
        code = error.headers.get("X-ClickHouse-Exception-Code", "")
        return error.code, code, error.read().decode()


def service_headers(server: EmbeddedClickHouse) -> dict[str, str]:
    return {"X-ClickHouse-User": "default", "X-ClickHouse-Key": server.password}


def test_default_password_is_generated_private_and_required(server: EmbeddedClickHouse) -> None:
    """The password file is 0600; no credentials, or default without it, get 516."""
    path = server.data_dir / "default_password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == server.password

    assert http(server, "SELECT 1")[:2] == (403, "516")
    assert http(server, "SELECT 1", {"X-ClickHouse-User": "default"})[:2] == (403, "516")
    assert http(server, "SELECT 1", params={"user": "default", "password": ""})[:2] == (403, "516")
    assert http(server, "SELECT 1", service_headers(server)) == (200, "", "1\n")
    client = create_client(server.url)
    try:
        assert client.command("SELECT 1") == 1
    finally:
        client.close()


def test_analyst_into_outfile_is_refused_and_no_file_is_written(
    server: EmbeddedClickHouse, tmp_path: Path
) -> None:
    target = tmp_path / "appended.txt"
    for query in (
        f"SELECT 'pwned' INTO OUTFILE '{target}' APPEND",
        f"SELECT 'pwned' INTO OUTFILE '{target}' FORMAT CSV",
        f"EXPLAIN SELECT 1 INTO OUTFILE '{target}'",
        f"SHOW TABLES INTO OUTFILE '{target}'",
        f"DESCRIBE TABLE system.one INTO OUTFILE '{target}'",
        f"EXISTS TABLE system.one INTO OUTFILE '{target}' TRUNCATE",
        f"SELECT 1 INTERSECT SELECT 1 INTO OUTFILE '{target}'",
    ):
        status, code, _ = http(server, query, ANALYST)
        assert (status, code) == (403, "497"), query
    assert not target.exists()


def test_analyst_kill_query_and_other_writing_statements_are_refused(
    server: EmbeddedClickHouse,
) -> None:
    """KILL of the services' queries, DDL, SYSTEM, SET, USE and access statements: READONLY."""
    for query in (
        "KILL QUERY WHERE user = 'default'",
        "KILL QUERY WHERE 1 SYNC",
        "CREATE TABLE default.mine (x UInt8) ENGINE = Memory",
        "DROP DATABASE IF EXISTS default",
        "SYSTEM DROP DNS CACHE",
        "SET max_execution_time = 1000",
        "USE system",
        "SHOW PROCESSLIST",
        "SHOW GRANTS",
        "INSERT INTO default.t VALUES (1)",
        "EXPLAIN AST KILL QUERY WHERE 1",
    ):
        status, code, _ = http(server, query, ANALYST)
        assert code == "164", (query, status, code)
    assert http(server, "EXISTS TABLE default.mine", service_headers(server))[2] == "0\n"


def test_analyst_cannot_read_other_sessions_query_text(server: EmbeddedClickHouse) -> None:
    """system.processes, by every spelling and route that reaches it, is refused."""
    for query in (
        "SELECT query FROM system.processes",
        "SELECT query FROM `system`.`processes`",
        'SELECT query FROM "system"."processes"',
        "SELECT 1 IN system.processes",
        "SELECT * FROM (SELECT query FROM system.processes) AS p",
        "WITH (SELECT any(query) FROM system.processes) AS q SELECT q",
        "SELECT query FROM merge('system', '^processes$')",
        "SELECT * FROM system.query_log",
        "SELECT * FROM system.users",
        "SELECT * FROM system.disks",
        "DESCRIBE TABLE system.processes",
    ):
        status, code, _ = http(server, query, ANALYST)
        assert (status, code) == (403, "497"), query
    refused = http(server, "SELECT query FROM processes", ANALYST, {"database": "system"})
    assert refused[:2] == (403, "497")
    for name in ("system.processes", "processes"):  # a table name given as a query parameter
        query = (
            "SELECT query FROM {t:Identifier}"
            if "." in name
            else "SELECT * FROM system.{t:Identifier}"
        )
        assert http(server, query, ANALYST, {"param_t": name})[:2] == (403, "497"), name


def test_analyst_cannot_raise_max_execution_time_or_lower_readonly(
    server: EmbeddedClickHouse,
) -> None:
    for params in ({"max_execution_time": "100000"}, {"readonly": "0"}, {"readonly": "2"}):
        status, code, _ = http(server, "SELECT 1", ANALYST, params)
        assert code == "164", params
    for query in (
        "SELECT 1 SETTINGS max_execution_time = 100000",
        "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
        "EXPLAIN SELECT 1 SETTINGS max_execution_time = 100000",
    ):
        assert http(server, query, ANALYST)[1] == "164", query
    status, _, body = http(
        server, "SELECT getSetting('max_execution_time'), getSetting('readonly')", ANALYST
    )
    assert (status, body) == (200, f"{ANALYST_MAX_EXECUTION_TIME}\t1\n")


def test_table_functions_and_functions_reaching_files_urls_or_servers_are_refused(
    server: EmbeddedClickHouse,
) -> None:
    for query in (
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT file('/etc/hostname')",
        "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'x String')",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', 'CSV', 'x String')",
        "SELECT * FROM input('x String')",
        "SELECT * FROM executable('id', 'TSV', 'x String')",
        "DESCRIBE file('/etc/hostname')",
        "SELECT getServerSetting('path')",
        "SELECT dictGet('d', 'v', 1)",
    ):
        status, code, _ = http(server, query, ANALYST)
        assert (status, code) == (403, "497"), query


def test_analyst_reads_catalogue_tables_and_plain_selects(server: EmbeddedClickHouse) -> None:
    """What clients need still works: system.settings/tables, SHOW, DESCRIBE, EXPLAIN, numbers."""
    for query, expected in (
        ("SELECT count() > 0 FROM system.settings", "1\n"),
        ("SELECT count() > 0 FROM system.tables WHERE database = 'system'", "1\n"),
        ("SELECT sum(number) FROM numbers(10)", "45\n"),
        ("WITH 2 AS x SELECT x * 21", "42\n"),
        ("SELECT 1 UNION ALL SELECT 1 FORMAT TSV", "1\n1\n"),
        ("DESCRIBE TABLE system.one", None),
        ("SHOW DATABASES", None),
        ("EXPLAIN SELECT 1", None),
        ("EXPLAIN header = 1 SELECT 1", None),
        ("SHOW TABLES FROM system LIKE 'one' LIMIT 1", "one\n"),
        ("SELECT count() > 0 FROM information_schema.tables", "1\n"),
    ):
        status, code, body = http(server, query, ANALYST)
        assert (status, code) == (200, ""), (query, body)
        if expected is not None:
            assert body == expected, query


def test_analyst_compressed_body_past_the_parser_limit_is_refused_unread(
    server: EmbeddedClickHouse,
) -> None:
    """A ~32 KB gzip body expanding to 32 MiB of statement is refused (202 QUERY_IS_TOO_LARGE)
    once past the read-only parser's limit, instead of being inflated whole (a 1 MB one held
    the engine and every service query ~6 s); the service still answers."""
    body = gzip.compress(b"SELECT 1 " + b" " * (32 << 20), 9)
    assert len(body) < 64 * 1024
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/",
        data=body,
        headers={**ANALYST, "Content-Encoding": "gzip"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert refused.value.headers.get("X-ClickHouse-Exception-Code") == "202"
    assert http(server, "SELECT 1", service_headers(server)) == (200, "", "1\n")


def test_service_answers_while_nine_heavy_analyst_queries_run(server: EmbeddedClickHouse) -> None:
    """Nine heavy analyst queries: two run (their share), the others are refused with 202 after
    waiting; meanwhile a service query is answered before any analyst query has ended."""
    outcomes: list[tuple[float, str]] = []
    lock = threading.Lock()

    def analyst() -> None:
        _, code, _ = http(server, HEAVY, ANALYST, timeout=120)
        with lock:
            outcomes.append((time.monotonic(), code))

    threads = [threading.Thread(target=analyst) for _ in range(9)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let two analyst queries start and the seven others queue
    status, _, body = http(server, "SELECT count() FROM numbers(1000)", service_headers(server))
    service_done = time.monotonic()
    for thread in threads:
        thread.join(timeout=120)

    assert (status, body) == (200, "1000\n")
    assert len(outcomes) == 9
    codes = sorted(code for _, code in outcomes)
    assert set(codes) <= {"159", "202"}, codes  # TIMEOUT_EXCEEDED or TOO_MANY_SIMULTANEOUS
    assert 1 <= codes.count("159") <= ANALYST_CONNECTIONS, codes
    first_analyst_end = min(at for at, _ in outcomes)
    assert service_done < first_analyst_end, "the service query waited behind the analysts"


def test_clickhouse_connect_analyst_reads_and_its_writes_are_refused(
    server: EmbeddedClickHouse,
) -> None:
    """The README's analyst login with clickhouse-connect: connects, reads, cannot write."""
    writer = create_client(server.url)
    writer.command("CREATE TABLE IF NOT EXISTS default.seen (x UInt8) ENGINE = Memory")
    writer.command("INSERT INTO default.seen VALUES (1), (2)")
    analyst = create_client(server.analyst_url)
    try:
        assert analyst.query("SELECT sum(x) FROM default.seen").result_rows == [(3,)]
        frame = analyst.query_df("SELECT x FROM default.seen ORDER BY x")
        assert list(frame["x"]) == [1, 2]
        with pytest.raises(DatabaseError) as refused:
            analyst.command("TRUNCATE TABLE default.seen")
        assert refused.value.code == 164
        with pytest.raises(DatabaseError):
            analyst.insert("default.seen", [[3]], column_names=["x"])
    finally:
        analyst.close()
    assert writer.command("SELECT count() FROM default.seen") == 2
    writer.close()
