"""Named sessions of the embedded server (``session_id``), kept apart from each other and from
sessionless requests.

A session is keyed by user and ``session_id``, as ClickHouse keys them. It costs nothing while
its statements leave no state (SELECT, INSERT...): those run on pooled connections like any
request. The first statement that may leave state on its connection (temporary tables, ``SET``,
``USE``, DDL) pins a dedicated engine connection to the session; later statements of the session
run there, and it is closed when the session ends (``close_session``, or ``session_timeout``
seconds after its last request). Pinned connections and sessions are bounded per user, and a
session runs one request at a time (SESSION_IS_LOCKED otherwise), as in ClickHouse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from infra.clickhouse_server.engine import ANALYST_LEVEL, Engine, EngineConnection
from infra.clickhouse_server.protocol import (
    INVALID_SESSION_TIMEOUT,
    READONLY,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    USER_SESSION_LIMIT_EXCEEDED,
    ClickHouseError,
    leaves_connection_state,
    truthy,
)

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT = 60.0
"""ClickHouse's ``default_session_timeout``."""
MAX_SESSION_TIMEOUT = 3600.0
"""ClickHouse's ``max_session_timeout``."""
MAX_SESSIONS_PER_USER = 1000
MAX_PINNED_PER_USER = 64


@dataclass
class Session:
    """One named session: its pinned connection (if any) and when it expires."""

    user: str
    session_id: str
    readonly: int
    expires: float
    connection: EngineConnection | None = None
    busy: bool = False


class Sessions:
    """The server's named sessions over one engine."""

    def __init__(
        self,
        engine: Engine,
        max_sessions_per_user: int = MAX_SESSIONS_PER_USER,
        max_pinned_per_user: int = MAX_PINNED_PER_USER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.max_sessions_per_user = max_sessions_per_user
        self.max_pinned_per_user = max_pinned_per_user
        self.clock = clock
        self._sessions: dict[tuple[str, str], Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def pinned(self, user: str | None = None) -> int:
        """Sessions holding a connection (of ``user``, or of everyone)."""
        return sum(
            1
            for s in self._sessions.values()
            if s.connection is not None and (user is None or s.user == user)
        )

    @asynccontextmanager
    async def connection(
        self, user: str, readonly: int, params: Mapping[str, str], sql: str
    ) -> AsyncIterator[EngineConnection]:
        """The connection the session's statement ``sql`` runs on, for the statement's duration."""
        session_id = params["session_id"]
        timeout = _session_timeout(params.get("session_timeout"))
        await self.expire()
        session = self._acquire(user, session_id, readonly, truthy(params.get("session_check")))
        ok = False
        try:
            if session.connection is None and leaves_connection_state(sql):
                if self.pinned(user) >= self.max_pinned_per_user:
                    raise ClickHouseError.build(
                        USER_SESSION_LIMIT_EXCEEDED,
                        f"User {user} has {self.max_pinned_per_user} sessions holding state; "
                        "close some (close_session=1) or let them time out",
                    )
                session.connection = await self._open(readonly)
            if session.connection is not None:
                async with self.engine.slot(readonly):
                    yield session.connection
            else:
                async with self.engine.lease(readonly) as pooled:
                    yield pooled
            ok = True
        except (ClickHouseError, asyncio.CancelledError):
            # A failed statement, or a client gone (the engine call ended before the cancel got
            # through), leaves the session as it was.
            ok = True
            raise
        finally:
            session.busy = False
            session.expires = self.clock() + timeout
            if not ok or truthy(params.get("close_session")):
                await self._close(session)

    def _acquire(self, user: str, session_id: str, readonly: int, check: bool) -> Session:
        key = (user, session_id)
        session = self._sessions.get(key)
        if session is None:
            if check:
                raise ClickHouseError.build(SESSION_NOT_FOUND, f"Session {session_id} not found")
            if sum(1 for s in self._sessions.values() if s.user == user) >= (
                self.max_sessions_per_user
            ):
                raise ClickHouseError.build(
                    USER_SESSION_LIMIT_EXCEEDED,
                    f"User {user} has reached the limit of {self.max_sessions_per_user} sessions",
                )
            session = Session(user, session_id, readonly, self.clock() + DEFAULT_SESSION_TIMEOUT)
            self._sessions[key] = session
        elif session.busy:
            raise ClickHouseError.build(
                SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
            )
        elif session.readonly != readonly:
            raise ClickHouseError.build(
                READONLY,
                f"Session {session_id} was opened with readonly = {session.readonly}; "
                f"a request with readonly = {readonly} cannot use it",
            )
        session.busy = True
        return session

    async def _open(self, readonly: int) -> EngineConnection:
        """A connection of the session's own, opened as the pool opens that level's (read-only
        ones with the analysts' fixed limits)."""
        engine = self.engine
        fixed = engine.analyst_settings if readonly == ANALYST_LEVEL else None
        return await engine.run(EngineConnection, engine.data_path, readonly, fixed)

    async def _close(self, session: Session) -> None:
        self._sessions.pop((session.user, session.session_id), None)
        connection, session.connection = session.connection, None
        if connection is not None:
            await asyncio.shield(self.engine.run(connection.close))

    async def expire(self) -> None:
        """Close the sessions whose timeout has passed since their last request."""
        now = self.clock()
        for session in [s for s in self._sessions.values() if not s.busy and s.expires <= now]:
            await self._close(session)

    async def close(self) -> None:
        """Close every session (server shutdown)."""
        for session in list(self._sessions.values()):
            await self._close(session)

    async def sweep(self, interval: float = 5.0) -> None:
        """Expire idle sessions every ``interval`` seconds, so their connections are freed even
        when no request comes (run as a background task)."""
        while True:
            await asyncio.sleep(interval)
            with suppress(Exception):
                await self.expire()


def _session_timeout(value: str | None) -> float:
    if value is None or value == "":
        return DEFAULT_SESSION_TIMEOUT
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not 0 <= timeout <= MAX_SESSION_TIMEOUT:
        raise ClickHouseError.build(
            INVALID_SESSION_TIMEOUT,
            f"Invalid session timeout: '{value}' (at most {MAX_SESSION_TIMEOUT:g} seconds)",
        )
    return timeout
