"""Named sessions of the embedded ClickHouse server: bounded, timed out, one request at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from infra.clickhouse_server.engine import EngineConnection
from infra.clickhouse_server.protocol import ClickHouseError
from infra.clickhouse_server.sessions import Sessions


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False
        self.usable = True

    def close(self) -> None:
        self.closed = True


class FakeEngine:
    """What Sessions uses of the engine; pooled connections are counted, pinned ones kept."""

    data_path = "/nowhere"
    analyst_settings: dict[str, str] = {}

    def __init__(self) -> None:
        self.opened: list[FakeConnection] = []
        self.pooled_uses = 0

    async def run(self, fn: Any, *args: Any) -> Any:
        if fn is EngineConnection:
            connection = FakeConnection()
            self.opened.append(connection)
            return connection
        return fn(*args)

    @asynccontextmanager
    async def slot(self, readonly: int) -> AsyncIterator[None]:
        yield

    @asynccontextmanager
    async def lease(self, readonly: int) -> AsyncIterator[FakeConnection]:
        self.pooled_uses += 1
        yield FakeConnection()


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sessions(**kwargs: Any) -> tuple[Sessions, FakeEngine, Clock]:
    engine, clock = FakeEngine(), Clock()
    return Sessions(engine, clock=clock, **kwargs), engine, clock  # type: ignore[arg-type]


async def _run(sessions: Sessions, session_id: str, sql: str, **params: str) -> Any:
    async with sessions.connection("u", 0, {"session_id": session_id, **params}, sql) as c:
        return c


async def test_reading_statements_of_a_session_use_the_pool_and_pin_nothing() -> None:
    sessions, engine, _ = _sessions()
    await _run(sessions, "s", "SELECT 1")
    assert engine.pooled_uses == 1 and engine.opened == [] and sessions.pinned() == 0


async def test_the_first_statement_leaving_state_pins_one_connection_for_the_session() -> None:
    sessions, engine, _ = _sessions()
    first = await _run(sessions, "s", "CREATE TEMPORARY TABLE t (x UInt8)")
    assert await _run(sessions, "s", "SELECT * FROM t") is first
    assert await _run(sessions, "other", "SELECT 1") is not first
    assert len(engine.opened) == 1 and sessions.pinned("u") == 1


async def test_an_idle_session_expires_after_its_timeout_and_its_connection_is_closed() -> None:
    sessions, engine, clock = _sessions()
    await _run(sessions, "s", "SET max_threads = 1", session_timeout="5")
    clock.now += 6
    await sessions.expire()
    assert engine.opened[0].closed and len(sessions) == 0


async def test_close_session_ends_it_after_the_request() -> None:
    sessions, engine, _ = _sessions()
    await _run(sessions, "s", "CREATE TEMPORARY TABLE t (x UInt8)")
    await _run(sessions, "s", "SELECT 1", close_session="1")
    assert engine.opened[0].closed and len(sessions) == 0


async def test_session_check_refuses_an_unknown_session() -> None:
    sessions, _, _ = _sessions()
    with pytest.raises(ClickHouseError) as caught:
        await _run(sessions, "nope", "SELECT 1", session_check="1")
    assert caught.value.code == 372


@pytest.mark.parametrize("timeout", ["-1", "3601", "soon"])
async def test_a_session_timeout_out_of_range_is_refused(timeout: str) -> None:
    sessions, _, _ = _sessions()
    with pytest.raises(ClickHouseError) as caught:
        await _run(sessions, "s", "SELECT 1", session_timeout=timeout)
    assert caught.value.code == 374


async def test_a_session_in_use_is_locked_for_a_second_request() -> None:
    sessions, _, _ = _sessions()
    async with sessions.connection("u", 0, {"session_id": "s"}, "SELECT 1"):
        with pytest.raises(ClickHouseError) as caught:
            await _run(sessions, "s", "SELECT 1")
    assert caught.value.code == 373


async def test_sessions_and_pinned_connections_are_bounded_per_user() -> None:
    sessions, _, _ = _sessions(max_sessions_per_user=3, max_pinned_per_user=1)
    await _run(sessions, "a", "CREATE TEMPORARY TABLE t (x UInt8)")
    with pytest.raises(ClickHouseError) as pinned:
        await _run(sessions, "b", "CREATE TEMPORARY TABLE t (x UInt8)")
    await _run(sessions, "c", "SELECT 1")
    with pytest.raises(ClickHouseError) as many:
        await _run(sessions, "d", "SELECT 1")
    assert pinned.value.code == many.value.code == 700
    async with sessions.connection("other user", 0, {"session_id": "d"}, "SELECT 1"):
        pass  # other users are not bounded by this one's sessions
