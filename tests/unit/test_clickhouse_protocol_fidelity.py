"""Pure rules behind the embedded server's fidelity to ClickHouse (issue 9, item 10)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from infra.clickhouse_server.protocol import (
    ArrowStreamJoiner,
    ClickHouseError,
    check_single_statement,
    exception_block,
    leaves_connection_state,
    new_exception_tag,
    split_insert,
)


def _arrow_stream(start: int, rows: int) -> bytes:
    """One complete Arrow IPC stream (schema, batch, end marker), as the engine yields a chunk."""
    table = pa.table({"n": pa.array(range(start, start + rows), pa.uint64())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_arrow_stream_chunks_join_into_one_stream_with_every_row() -> None:
    joiner = ArrowStreamJoiner()
    data = b"".join(joiner.feed(_arrow_stream(i * 100, 100)) for i in range(5)) + joiner.finish()
    table = pa.ipc.open_stream(data).read_all()
    assert table.column("n").to_pylist() == list(range(500))


def test_arrow_stream_chunks_of_another_schema_are_an_error_not_silent_loss() -> None:
    joiner = ArrowStreamJoiner()
    joiner.feed(_arrow_stream(0, 3))
    other = pa.table({"m": pa.array([1], pa.int8())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, other.schema) as writer:
        writer.write_table(other)
    with pytest.raises(ClickHouseError):
        joiner.feed(sink.getvalue().to_pybytes())


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "SELECT 1;",
        "SELECT 1; -- trailing comment",
        "SELECT ';' AS semicolon, `a;b` FROM t",
        "SELECT $$ a; b $$",
        "SELECT $tag$;$tag$ /* ; */",
    ],
)
def test_one_statement_passes(sql: str) -> None:
    check_single_statement(sql)


@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "DROP TABLE a;\nDROP TABLE b;"])
def test_several_statements_are_a_syntax_error_like_clickhouse(sql: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        check_single_statement(sql)
    assert caught.value.code == 62
    assert "Multi-statements are not allowed" in caught.value.message


@pytest.mark.parametrize(
    ("sql", "leaves"),
    [
        ("SELECT 1", False),
        ("with 1 AS x SELECT x", False),
        ("INSERT INTO t VALUES (1)", False),
        ("CREATE TEMPORARY TABLE t (x UInt8)", True),
        ("/* c */ create temporary table t (x UInt8)", True),
        ("SET max_threads = 1", True),
        ("USE other", True),
        ("DROP TABLE t", True),
    ],
)
def test_statements_that_may_leave_connection_state(sql: str, leaves: bool) -> None:
    assert leaves_connection_state(sql) is leaves


def test_with_clause_before_insert_keeps_inline_data_and_its_semicolons() -> None:
    text = "WITH {v:Int32} AS value INSERT INTO t (s) FORMAT TabSeparated\nvalue_1;\n"
    found = split_insert(text)
    assert found is not None
    assert found.statement == "WITH {v:Int32} AS value INSERT INTO t (s)"
    assert text[found.data_offset :] == "value_1;\n"


@pytest.mark.parametrize(
    "sql", ["WITH insert AS (SELECT 13 AS n) SELECT * FROM insert", "WITH 13 AS insert SELECT 1"]
)
def test_a_cte_or_alias_named_insert_is_not_an_insert(sql: str) -> None:
    assert split_insert(sql) is None


def test_exception_block_is_what_clickhouse_writes_after_the_headers() -> None:
    tag = new_exception_tag()
    assert len(tag) == 16 and tag.isalnum()
    message = b"Code: 395. DB::Exception: boom. (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO)\n"
    block = exception_block(tag, message)
    assert block == (
        b"\r\n__exception__\r\n"
        + tag.encode()
        + b"\r\n"
        + message
        + f"{len(message)} {tag}\r\n__exception__\r\n".encode()
    )


def test_exception_block_is_at_most_16_kib() -> None:
    block = exception_block(new_exception_tag(), b"Code: 1. " + b"x" * 100_000)
    assert len(block) <= 16 * 1024
