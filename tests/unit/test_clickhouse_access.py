"""The analyst's statement policy on given syntax trees, and the default password's plumbing
(the engine's own parse is exercised in tests/integration/test_clickhouse_access.py)."""

from __future__ import annotations

import asyncio
import stat
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.clickhouse import parse_url
from infra.clickhouse_server.access import judge, parse_tree
from infra.clickhouse_server.engine import ANALYST_LEVEL, Engine
from infra.clickhouse_server.protocol import ClickHouseError
from infra.clickhouse_server.settings import (
    ClickHouseServerSettings,
    ClickHouseUser,
    ensure_default_password,
)
from infra.settings import CommonSettings, with_credentials

SELECT_FROM = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier {name}
"""


def _code(tree: str) -> int | None:
    try:
        judge(parse_tree(tree))
    except ClickHouseError as error:
        return error.code
    return None


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("modelgate.requests", True),
        ("requests (alias system)", True),
        ("system.one", True),
        ("system.settings", True),
        ("system.processes", False),
        ("system.processes (alias one)", False),
        ("system.query_log", False),
        ("system.one.x", True),
        ("system.processes.one", False),
        ("_temporary_and_external_tables._tmp_abc", False),
    ],
)
def test_tables_of_private_databases_are_refused_however_named(name: str, allowed: bool) -> None:
    assert _code(SELECT_FROM.format(name=name)) == (None if allowed else 497)


def test_a_name_with_a_newline_cannot_add_a_second_root_or_jump_levels() -> None:
    forged = SELECT_FROM.format(name="x\nKillQueryQuery")
    assert _code(forged) == 497
    jump = "SelectWithUnionQuery\n ExpressionList\n   Literal UInt64_1\n"
    assert _code(jump) == 497


def test_only_reading_statements_pass_and_outfile_and_settings_do_not() -> None:
    assert _code("KillQueryQuery Literal_UInt64_1 ASYNC (children 1)\n Literal UInt64_1\n") == 164
    assert _code("ShowProcesslistQuery\n") == 164
    assert _code("ShowTables\n") is None
    outfile = "SelectWithUnionQuery (children 2)\n ExpressionList\n  SelectQuery\n Literal '/x'\n"
    assert _code(outfile) == 497
    assert _code("ShowTables (children 1)\n Literal '/x'\n") == 497
    assert (
        _code("DescribeQuery (children 2)\n TableExpression\n  TableIdentifier t\n Literal 'x'\n")
        == 497
    )
    limit = "SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   ExpressionList\n"
    limit += "   Literal UInt64_1\n"  # LIMIT 1: a literal of the SELECT, not of the statement
    assert _code(limit) is None
    settings = "SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   Set\n"
    assert _code(settings) == 164
    explain = "Explain EXPLAIN (children 2)\n Set\n SelectWithUnionQuery\n  ExpressionList\n"
    assert _code(explain) is None  # EXPLAIN indexes = 1 SELECT ...: EXPLAIN's own options
    late_set = "Explain EXPLAIN (children 2)\n SelectWithUnionQuery\n  ExpressionList\n Set\n"
    assert _code(late_set) == 164
    explain_kill = "Explain EXPLAIN AST (children 1)\n KillQueryQuery\n"
    assert _code(explain_kill) == 164


def test_table_functions_are_allow_listed_and_file_reading_functions_refused() -> None:
    numbers = SELECT_FROM.replace("TableIdentifier {name}", "Function numbers (children 1)")
    assert _code(numbers) is None
    for function in ("file", "url", "remote", "merge", "s3Cluster", "icebergLocal", "someNewOne"):
        tree = SELECT_FROM.replace("TableIdentifier {name}", f"Function {function} (children 1)")
        assert _code(tree) == 497, function
    for function in ("file", "dictGetString", "getServerSetting", "filesystemAvailable"):
        scalar = f"SelectWithUnionQuery\n ExpressionList\n  SelectQuery\n   Function {function}\n"
        assert _code(scalar) == 497, function


def test_default_password_is_made_once_private_and_shared_by_concurrent_callers(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "clickhouse"
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_default_password(data_dir)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results[0]) >= 24
    path = data_dir / "default_password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == ["default_password"]
    assert ensure_default_password(data_dir) == results[0]


def test_server_fills_default_password_and_refuses_other_users_without_one(
    tmp_path: Path,
) -> None:
    settings = ClickHouseServerSettings(clickhouse_server_data_dir=tmp_path)
    users = {user.name: user for user in settings.resolved_users()}
    assert users["default"].password == (tmp_path / "default_password").read_text().strip()
    assert users["analyst"] == ClickHouseUser(name="analyst", password="analyst", readonly=True)
    explicit = ClickHouseServerSettings(
        clickhouse_server_data_dir=tmp_path / "other",
        clickhouse_server_default_password="chosen",
    )
    assert {u.name: u.password for u in explicit.resolved_users()}["default"] == "chosen"
    assert not (tmp_path / "other" / "default_password").exists()
    with pytest.raises(ValidationError):
        ClickHouseServerSettings(
            clickhouse_server_users=[ClickHouseUser(name="bob", password="", readonly=True)]
        )


def test_services_take_the_password_file_when_their_url_names_default_without_one(
    tmp_path: Path,
) -> None:
    password_file = tmp_path / "default_password"
    password_file.write_text("s3cret\n")
    settings = CommonSettings(
        clickhouse_url="http://default:@127.0.0.1:8123/", clickhouse_password_file=password_file
    )
    assert parse_url(settings.clickhouse_url).password == "s3cret"
    other = CommonSettings(
        clickhouse_url="http://analyst:analyst@127.0.0.1:8123/db",
        clickhouse_password_file=password_file,
    )
    assert parse_url(other.clickhouse_url).password == "analyst"
    missing = CommonSettings(
        clickhouse_url="http://default:@127.0.0.1:8123/",
        clickhouse_password_file=tmp_path / "absent",
    )
    assert parse_url(missing.clickhouse_url).password == ""
    url = with_credentials("http://old:pw@host:9000/db?x=1", "default", "p@ss:/")
    target = parse_url(url)
    assert (target.username, target.password, target.port, target.database) == (
        "default",
        "p@ss:/",
        9000,
        "db",
    )


async def test_analysts_share_is_bounded_and_services_never_wait_for_it() -> None:
    """One analyst connection: a second analyst waits then gets 202, a third beyond the queue
    limit gets 202 at once; a service statement gets its place meanwhile."""
    engine = Engine(
        Path("/nonexistent"),
        max_connections=1,
        analyst_connections=1,
        analyst_queue_timeout=0.3,
        analyst_queue_limit=1,
    )
    try:
        async with engine._share(ANALYST_LEVEL):
            waiting = asyncio.create_task(_enter(engine, ANALYST_LEVEL))
            await asyncio.sleep(0.05)
            assert engine.analysts_waiting == 1
            with pytest.raises(ClickHouseError) as at_once:
                await _enter(engine, ANALYST_LEVEL)
            assert at_once.value.code == 202
            await asyncio.wait_for(_enter(engine, 0), timeout=1)  # the services' share is free
            with pytest.raises(ClickHouseError) as waited:
                await waiting
            assert waited.value.code == 202
        await asyncio.wait_for(_enter(engine, ANALYST_LEVEL), timeout=1)
        assert (engine.analysts_waiting, engine.analysts_running) == (0, 0)
    finally:
        engine.executor.shutdown()


async def _enter(engine: Engine, level: int) -> None:
    async with engine._share(level):
        pass
