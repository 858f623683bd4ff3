"""The ClickHouse engine (chdb) behind the embedded server: a pool of connections on one data path.

chdb runs one engine per process; any number of connections to its data path run queries in
parallel (chdb releases the GIL), and each connection keeps its own ``SET`` state and current
database. So:

* Users are enforced by the connection they are served on: connections are pooled per
  ``readonly`` level, fixed when the connection opens (``?readonly=1`` in its connection string),
  so a read-only user can never get a writable connection and no request can lower the level.
  A writable user's GET requests get level 2, as ClickHouse does for GET.
* Per-request settings never leak to the next user of a pooled connection: each connection
  remembers the settings it was given and, before every request, is brought to exactly the
  request's settings with one ``SET a = v, b = DEFAULT`` (only the difference). Statements that
  change connection state behind our back (``SET``, ``USE``, ``SET ROLE``...) get the connection
  discarded after the request, as does any connection whose reconciliation failed.
* Blocking chdb calls run in a thread pool sized like the connection pool, so the event loop
  keeps serving while queries run.
* Read-only (``readonly = 1``) connections are the analysts' share: a pool of their own, with
  its own limit of statements at once and a bounded wait, opened with the analysts' limits
  (``max_execution_time``...) before ``readonly = 1`` fixes them. Writable connections (the
  services) never wait behind analysts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chdb.state.sqlitelike import Connection, StreamingInserter

from infra.clickhouse_server.protocol import UNKNOWN_SETTING, ClickHouseError, first_keyword

TOO_MANY_SIMULTANEOUS_QUERIES = 202
ANALYST_LEVEL = 1
"""Connections of this readonly level form the analysts' share of the engine."""

log = logging.getLogger(__name__)

T = TypeVar("T")

_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

# Statements that change per-connection state; the connection is dropped after running one.
_STATEFUL_KEYWORDS = frozenset({"SET", "USE"})


@dataclass
class QueryOutcome:
    """What one executed statement produced and what it cost."""

    data: bytes
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    elapsed_ns: int = 0

    def merge(self, other: QueryOutcome) -> QueryOutcome:
        """This chunk of a streamed result followed by the next one."""
        return QueryOutcome(
            data=self.data + other.data,
            read_rows=self.read_rows + other.read_rows,
            read_bytes=self.read_bytes + other.read_bytes,
            written_rows=self.written_rows + other.written_rows,
            written_bytes=self.written_bytes + other.written_bytes,
            result_rows=self.result_rows + other.result_rows,
            elapsed_ns=max(self.elapsed_ns, other.elapsed_ns),
        )

    def summary(self) -> dict[str, str]:
        """The ``X-ClickHouse-Summary`` header ClickHouse sends (all values as strings)."""
        return {
            "read_rows": str(self.read_rows),
            "read_bytes": str(self.read_bytes),
            "written_rows": str(self.written_rows),
            "written_bytes": str(self.written_bytes),
            "total_rows_to_read": str(self.read_rows),
            "result_rows": str(self.result_rows),
            "result_bytes": str(len(self.data)),
            "elapsed_ns": str(self.elapsed_ns),
        }


def _outcome(result: Any) -> QueryOutcome:
    if result is None:
        return QueryOutcome(b"")
    return QueryOutcome(
        data=result.bytes(),
        read_rows=int(result.storage_rows_read()),
        read_bytes=int(result.storage_bytes_read()),
        written_rows=int(result.rows_written()),
        written_bytes=int(result.bytes_written()),
        result_rows=int(result.rows_read()),
        elapsed_ns=int(result.elapsed() * 1e9),
    )


class EngineConnection:
    """One chdb connection and the state (database, settings) it was last left in."""

    def __init__(self, data_path: Path, readonly: int, fixed: dict[str, str] | None = None) -> None:
        # readonly goes last: the settings before it are applied while they still may be.
        options = [f"{name}={value}" for name, value in (fixed or {}).items()]
        options += [f"readonly={readonly}"] if readonly else []
        suffix = "?" + "&".join(options) if options else ""
        self.connection = Connection(f"{data_path}{suffix}")
        self.readonly = readonly
        self.database: str | None = None
        self.settings: dict[str, str] = {}
        self.usable = True

    def prepare(self, database: str, settings: dict[str, str]) -> None:
        """Bring the connection to the request's database and exactly its settings."""
        for name in settings:
            if not _SETTING_NAME.fullmatch(name):  # names go into SQL text: identifiers only
                raise ClickHouseError.build(UNKNOWN_SETTING, f"Unknown setting '{name}'")
        try:
            if database != self.database:
                self.database = None
                self.connection.query(f"USE {quote_identifier(database)}", "TabSeparated")
                self.database = database
            changes = [
                f"{name} = {quote_value(value)}"
                for name, value in settings.items()
                if self.settings.get(name) != value
            ]
            changes += [f"{name} = DEFAULT" for name in self.settings if name not in settings]
            if changes:
                self.usable = False  # until we know exactly what is applied
                self.connection.query("SET " + ", ".join(changes), "TabSeparated")
                self.settings = dict(settings)
                self.usable = True
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None

    def query(self, sql: str | bytes, fmt: str, params: dict[str, str]) -> QueryOutcome:
        """Run a statement (bytes: a text that is not UTF-8, such as binary literals)."""
        text = sql if isinstance(sql, str) else sql.decode("utf-8", errors="replace")
        if first_keyword(text) in _STATEFUL_KEYWORDS:
            self.usable = False
        try:
            # chdb's binding takes bytes as well as str (its annotation says str only).
            return _outcome(self.connection.query(sql, fmt, params=params))  # type: ignore[arg-type]
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None

    def stream(
        self, sql: str | bytes, fmt: str, params: dict[str, str]
    ) -> Generator[QueryOutcome, None, None]:
        """Result chunks of a SELECT, fetched one by one (call ``next`` from a worker thread)."""
        try:
            result = self.connection.send_query(sql, fmt, params=params)  # type: ignore[arg-type]
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None
        try:
            while True:
                try:
                    chunk = result.fetch()  # type: ignore[no-untyped-call]
                except RuntimeError as exc:
                    raise ClickHouseError.from_engine(exc) from None
                if chunk is None:
                    return
                yield _outcome(chunk)
        finally:
            with suppress(Exception):
                result.close()  # type: ignore[no-untyped-call]

    def begin_insert(self, statement: str, fmt: str) -> StreamingInserter:
        try:
            return self.connection.send_insert(statement, fmt)
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None

    def close(self) -> None:
        with suppress(Exception):
            self.connection.close()


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_value(value: str) -> str:
    """A setting value as a SQL string literal, whatever the setting's type.

    URL parameters are text and ClickHouse parses each by its setting's type; the engine does the
    same with a string literal (``SET max_threads = '4'``), while a bare number given to a string
    setting (``format_csv_delimiter=1``) fails.
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _too_many(why: str) -> ClickHouseError:
    return ClickHouseError(
        TOO_MANY_SIMULTANEOUS_QUERIES,
        f"DB::Exception: Too many simultaneous queries of read-only users: {why}. "
        "(TOO_MANY_SIMULTANEOUS_QUERIES)",
        "TOO_MANY_SIMULTANEOUS_QUERIES",
    )


class Engine:
    """The connection pool over chdb's engine, with the facts the HTTP layer reports."""

    def __init__(
        self,
        data_path: Path,
        max_connections: int = 8,
        analyst_connections: int = 2,
        analyst_settings: dict[str, str] | None = None,
        analyst_queue_timeout: float = 30.0,
        analyst_queue_limit: int = 32,
    ) -> None:
        self.data_path = data_path
        self.max_connections = max_connections
        self.analyst_connections = analyst_connections
        self.analyst_settings = dict(analyst_settings or {})
        self.analyst_queue_timeout = analyst_queue_timeout
        self.analyst_queue_limit = analyst_queue_limit
        self.executor = ThreadPoolExecutor(
            max_workers=max_connections + analyst_connections + 1, thread_name_prefix="chdb"
        )
        self._idle: dict[int, list[EngineConnection]] = {0: [], 1: [], 2: []}
        self._slots = asyncio.Semaphore(max_connections)
        self._analyst_slots = asyncio.Semaphore(analyst_connections)
        self.analysts_waiting = 0
        self.analysts_running = 0
        self._outside: list[EngineConnection] = []
        self._lock = threading.Lock()
        self._anchor: Connection | None = None
        self.version = ""
        self.timezone = "UTC"
        self.output_formats: frozenset[str] = frozenset()
        self.input_formats: frozenset[str] = frozenset()

    def open(self) -> None:
        """Start the engine on the data path and learn its version, time zone and formats."""
        self.data_path.mkdir(parents=True, exist_ok=True)
        # The anchor keeps the engine alive while pooled connections come and go.
        self._anchor = Connection(str(self.data_path))
        row = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode()
        self.version, self.timezone = row.rstrip("\n").split("\t")
        formats = self._anchor.query(
            "SELECT name, is_input, is_output FROM system.formats", "TabSeparated"
        )
        rows = [line.split("\t") for line in formats.bytes().decode().splitlines()]
        self.output_formats = frozenset(name for name, _, out in rows if out == "1")
        self.input_formats = frozenset(name for name, inp, _ in rows if inp == "1")
        log.info("chdb engine %s on %s (time zone %s)", self.version, self.data_path, self.timezone)

    def close(self) -> None:
        """Close every connection, the anchor last (that shuts the engine down cleanly)."""
        with self._lock:
            idle = [c for conns in self._idle.values() for c in conns] + self._outside
            for conns in self._idle.values():
                conns.clear()
            self._outside = []
        for connection in idle:
            connection.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking engine call in the engine's thread pool."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # An engine call cannot be interrupted: let it finish before the caller releases
            # (or closes) the connection it is using.
            with suppress(BaseException):
                await future
            raise

    def open_connection(
        self, readonly: int, extra: dict[str, str] | None = None
    ) -> EngineConnection:
        """A connection outside the pool (blocking; closed with the engine), opened as the pool
        opens that level's connections, plus ``extra`` settings."""
        fixed = self.analyst_settings if readonly == ANALYST_LEVEL else {}
        connection = EngineConnection(self.data_path, readonly, {**fixed, **(extra or {})})
        with self._lock:
            self._outside.append(connection)
        return connection

    @asynccontextmanager
    async def _share(self, readonly: int) -> AsyncIterator[None]:
        """A place in the services' share, or (readonly = 1) in the analysts' bounded one."""
        if readonly != ANALYST_LEVEL:
            async with self._slots:
                yield
            return
        if self.analysts_waiting >= self.analyst_queue_limit:
            raise _too_many(
                f"{self.analysts_waiting} of their statements already wait for one of their "
                f"{self.analyst_connections} connections"
            )
        self.analysts_waiting += 1
        try:
            async with asyncio.timeout(self.analyst_queue_timeout):
                await self._analyst_slots.acquire()
        except TimeoutError:
            raise _too_many(
                f"all {self.analyst_connections} of their connections stayed busy for "
                f"{self.analyst_queue_timeout:g} s"
            ) from None
        finally:
            self.analysts_waiting -= 1
        self.analysts_running += 1
        try:
            yield
        finally:
            self.analysts_running -= 1
            self._analyst_slots.release()

    @asynccontextmanager
    async def slot(self, readonly: int) -> AsyncIterator[None]:
        """A place among the statements running at once, for a statement on a connection outside
        the pool (a session's): sessions share the same bounds as pooled requests."""
        async with self._share(readonly):
            yield

    @asynccontextmanager
    async def lease(self, readonly: int) -> AsyncIterator[EngineConnection]:
        """A connection of the given readonly level for one request, returned (or dropped) after."""
        async with self._share(readonly):
            with self._lock:
                idle = self._idle[readonly]
                connection = idle.pop() if idle else None
            if connection is None:
                fixed = self.analyst_settings if readonly == ANALYST_LEVEL else None
                connection = await self.run(EngineConnection, self.data_path, readonly, fixed)
            ok = False
            try:
                yield connection
                ok = True
            except ClickHouseError:
                ok = True  # a failed statement leaves the connection as it was
                raise
            finally:
                if ok and connection.usable:
                    with self._lock:
                        self._idle[readonly].append(connection)
                else:
                    await asyncio.shield(self.run(connection.close))
