"""What one HTTP request to the embedded server does, independent of the web framework.

``QueryService`` authenticates, decides the readonly level, database, settings and formats,
then runs the statement on the engine: buffered, streamed (large SELECT results), or as a
streaming INSERT fed from the request body.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass

from chdb.state.sqlitelike import InsertResult, StreamingInserter

from infra.clickhouse_server.access import PARSER_MAX_QUERY_SIZE, StatementPolicy
from infra.clickhouse_server.engine import Engine, EngineConnection, QueryOutcome
from infra.clickhouse_server.protocol import (
    AUTHENTICATION_FAILED,
    CANNOT_DECOMPRESS,
    QUERY_IS_TOO_LARGE,
    READONLY,
    STREAMABLE_FORMATS,
    SYNTAX_ERROR,
    ArrowStreamJoiner,
    BlockDecoder,
    ChainedCodec,
    ClickHouseError,
    Decoder,
    RequestParams,
    check_single_statement,
    first_keyword,
    leaves_connection_state,
    output_format,
    produces_result,
    request_decoder,
    split_insert,
    strip_statement,
    truthy,
)
from infra.clickhouse_server.sessions import Sessions
from infra.clickhouse_server.settings import ClickHouseUser

# ClickHouse's max_query_size: the INSERT statement must start within this many bytes.
HEAD_BYTES = 256 * 1024
INSERT_CHUNK_BYTES = 1 << 20
# ClickHouse's http_response_buffer_size: results this small are answered in one piece.
RESPONSE_BUFFER_BYTES = 1 << 20
# ClickHouse sends each block of a result as soon as it is ready; a result still coming after
# this long has its headers sent with what is held, and the rest follows as it comes.
HOLD_BACK_SECONDS = 0.25
_SELECT_KEYWORDS = frozenset({"SELECT", "WITH"})
# readonly levels from least to most strict (ClickHouse: 2 still allows changing settings).
_STRICTNESS = {0: 0, 2: 1, 1: 2}


@dataclass
class Credentials:
    """Who the request says it is, from whichever place ClickHouse accepts it."""

    user: str = "default"
    password: str = ""


def credentials_from(headers: Mapping[str, str], params: Mapping[str, str]) -> Credentials:
    """Credentials from X-ClickHouse-User/Key, HTTP basic auth or user/password parameters.

    Mixing the schemes is refused, as ClickHouse refuses it.
    """
    header_user = headers.get("x-clickhouse-user", "")
    header_key = headers.get("x-clickhouse-key", "")
    authorization = headers.get("authorization", "")
    in_params = "user" in params or "password" in params
    if header_user or header_key:
        if authorization or in_params:
            raise _auth_error(
                "Invalid authentication: X-ClickHouse headers cannot be mixed with other schemes"
            )
        return Credentials(header_user or "default", header_key)
    if authorization:
        if in_params:
            raise _auth_error(
                "Invalid authentication: it is not allowed to use Authorization HTTP header "
                "and authentication via parameters simultaneously"
            )
        scheme, _, info = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise _auth_error(
                f"Invalid authentication: '{scheme}' HTTP Authorization scheme is not supported"
            )
        try:
            user, _, password = base64.b64decode(info.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _auth_error("Invalid authentication: malformed Basic credentials") from None
        return Credentials(user or "default", password)
    return Credentials(params.get("user") or "default", params.get("password", ""))


def _auth_error(text: str) -> ClickHouseError:
    return ClickHouseError.build(AUTHENTICATION_FAILED, text)


@dataclass
class Reply:
    """A successful answer: headers' facts, the first bytes and, when streaming, the rest."""

    query_id: str
    format: str | None
    """Output format; None for statements without a result (DDL, INSERT), as ClickHouse does."""
    summary: dict[str, str]
    body: bytes
    rest: AsyncGenerator[bytes, None] | None = None


class BodyReader:
    """Decompresses a request body chunk by chunk, enforcing the size limit."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        content_encoding: str | None,
        limit: int,
        internal_compression: bool = False,
    ) -> None:
        self.chunks = chunks
        self.decoder: Decoder = request_decoder(content_encoding)
        if internal_compression:
            self.decoder = ChainedCodec(self.decoder, BlockDecoder())
        self.limit = limit
        self.total = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for raw in self.chunks:
            try:
                data = self.decoder.feed(raw)
            except ClickHouseError:
                raise
            except Exception as exc:  # the codecs raise their own error types
                raise ClickHouseError.build(
                    CANNOT_DECOMPRESS, f"Cannot decompress the request body: {exc}"
                ) from None
            if data:
                self.total += len(data)
                if self.total > self.limit:
                    raise ClickHouseError.build(
                        QUERY_IS_TOO_LARGE,
                        f"Request body is larger than the limit of {self.limit} bytes",
                    )
                yield data
        tail = self.decoder.finish()
        if tail:
            yield tail


class QueryService:
    """Runs the SQL of HTTP requests on the engine, as ClickHouse's HTTP handler does."""

    def __init__(
        self,
        engine: Engine,
        users: list[ClickHouseUser],
        max_body_bytes: int,
        sessions: Sessions | None = None,
    ) -> None:
        self.engine = engine
        self.users = {user.name: user for user in users}
        self.max_body_bytes = max_body_bytes
        self.policy = StatementPolicy(engine)
        self.sessions = sessions or Sessions(engine)

    def _connection(
        self, user: str, level: int, params: RequestParams, sql: str | bytes
    ) -> AbstractAsyncContextManager[EngineConnection]:
        """Where the statement runs: its session's connection, or a pooled one."""
        text = sql if isinstance(sql, str) else sql.decode("utf-8", errors="replace")
        if params.reserved.get("session_id"):
            return self.sessions.connection(user, level, params.reserved, text)
        return self._sessionless(level, text)

    @asynccontextmanager
    async def _sessionless(self, level: int, sql: str) -> AsyncIterator[EngineConnection]:
        async with self.engine.lease(level) as connection:
            try:
                yield connection
            finally:
                if leaves_connection_state(sql):
                    # As in ClickHouse, a request without session_id has a session of its own:
                    # what its statement left (a temporary table, a setting) ends with the
                    # request; the connection is closed, never handed to the next request.
                    connection.usable = False

    def authenticate(self, credentials: Credentials) -> ClickHouseUser:
        user = self.users.get(credentials.user)
        expected = user.password if user is not None else "\0never"
        if (
            not hmac.compare_digest(expected.encode(), credentials.password.encode())
            or user is None
        ):
            raise _auth_error(
                f"{credentials.user}: Authentication failed: password is incorrect, "
                "or there is no user with such name"
            )
        return user

    def readonly_level(self, user: ClickHouseUser, method: str, params: RequestParams) -> int:
        """The connection level for this request; a request may only make it stricter."""
        base = 1 if user.readonly else (2 if method in {"GET", "HEAD"} else 0)
        requested = params.settings.pop("readonly", None)
        if requested is None:
            return base
        try:
            level = int(requested)
        except ValueError:
            raise ClickHouseError.build(
                READONLY, f"Invalid value '{requested}' of setting 'readonly'"
            ) from None
        if level not in _STRICTNESS or _STRICTNESS[level] < _STRICTNESS[base]:
            raise ClickHouseError.build(
                READONLY, "Cannot modify 'readonly' setting in readonly mode"
            )
        return level

    async def execute(
        self,
        user: ClickHouseUser,
        method: str,
        params: RequestParams,
        body: AsyncIterator[bytes],
        content_encoding: str | None,
    ) -> Reply:
        """Run the request's statement; errors come out as ``ClickHouseError``."""
        try:
            return await self._execute(user, method, params, body, content_encoding)
        except ClickHouseError as error:
            if error.name == "READONLY":
                # chdb runs everything as its own `default`; name the user who was refused.
                error.message = error.message.replace(
                    "DB::Exception: default: ", f"DB::Exception: {user.name}: "
                )
            raise

    async def _execute(
        self,
        user: ClickHouseUser,
        method: str,
        params: RequestParams,
        body: AsyncIterator[bytes],
        content_encoding: str | None,
    ) -> Reply:
        query_id = params.query_id or str(uuid.uuid4())
        level = self.readonly_level(user, method, params)
        database = params.database or "default"
        reader = BodyReader(
            body,
            content_encoding,
            self.max_body_bytes,
            internal_compression=truthy(params.reserved.get("decompress")),
        ).__aiter__()

        prefix = (params.query + "\n").encode() if params.query else b""
        head = bytearray(prefix)
        body_done = False
        while len(head) < HEAD_BYTES + len(prefix):
            chunk = await anext(reader, None)
            if chunk is None:
                body_done = True
                break
            head += chunk
        text = head.decode("latin-1")
        insert = split_insert(text)
        if insert is not None and user.readonly:
            raise ClickHouseError.build(READONLY, "Cannot execute INSERT in readonly mode")
        # Query parameters inside inline data (VALUES ({id:UInt32})) need the whole statement.
        inline = insert is not None and body_done and bool(params.query_params)
        if insert is not None and not inline:
            return await self._insert(
                user.name,
                level,
                database,
                params,
                query_id,
                insert.statement,
                insert.format,
                bytes(head[insert.data_offset :]),
                None if body_done else reader,
            )
        # A read-only user's body is only ever a statement: past what the policy's parser takes
        # it is refused unread (a 1 MB gzip body expands to the 1 GiB body limit).
        cap = PARSER_MAX_QUERY_SIZE if user.readonly else len(head) + self.max_body_bytes
        if not body_done:
            async for chunk in reader:
                head += chunk
                if len(head) > cap:
                    break
        if len(head) > cap:
            raise ClickHouseError.build(
                QUERY_IS_TOO_LARGE,
                f"Query is too large: a read-only user's query is at most {cap} bytes",
            )
        decoded = head.decode("utf-8", errors="replace")
        sql = decoded.strip() if inline else strip_statement(decoded)  # data keeps its ';'
        if not sql:
            raise ClickHouseError.build(SYNTAX_ERROR, "Empty query")
        if not inline:
            check_single_statement(sql)
        if user.readonly:
            await self.policy.check(sql, database, params.query_params)
        fmt = (
            output_format(sql, self.engine.output_formats)
            or params.default_format
            or "TabSeparated"
        )
        # The engine runs the text as sent: bytes that are not UTF-8 (binary literals, as
        # clickhouse-connect sends bytes parameters) go as bytes. Read-only users' statements were
        # judged on their decoded text above, so that is exactly what they run.
        statement: str | bytes = sql
        if not user.readonly and "\ufffd" in sql and not _is_utf8(head):
            raw = bytes(head).strip()
            statement = raw if inline else raw.rstrip(b";").rstrip()
        if (
            not inline
            and not params.wait_end_of_query
            and fmt in STREAMABLE_FORMATS
            and first_keyword(sql) in _SELECT_KEYWORDS
        ):
            return await self._stream(user.name, level, database, params, query_id, statement, fmt)
        async with self._connection(user.name, level, params, statement) as connection:
            await self.engine.run(connection.prepare, database, params.settings)
            outcome = await self.engine.run(connection.query, statement, fmt, params.query_params)
        result_format = fmt if outcome.data or (produces_result(sql) and not inline) else None
        return Reply(query_id, result_format, outcome.summary(), outcome.data)

    async def _stream(
        self,
        user: str,
        level: int,
        database: str,
        params: RequestParams,
        query_id: str,
        sql: str | bytes,
        fmt: str,
    ) -> Reply:
        """Stream a result; hold up to ``RESPONSE_BUFFER_BYTES`` back (for at most
        ``HOLD_BACK_SECONDS`` once data came) so that small results get complete headers
        (summary) and early errors a proper status, while slow results flow as they come."""
        chunks = self._stream_chunks(user, level, database, params, sql, fmt)
        held = QueryOutcome(b"")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HOLD_BACK_SECONDS
        pending: asyncio.Future[QueryOutcome | None] | None = None
        try:
            while len(held.data) < RESPONSE_BUFFER_BYTES:
                pending = asyncio.ensure_future(anext(chunks, None))
                if held.data:
                    await asyncio.wait({pending}, timeout=max(0.0, deadline - loop.time()))
                    if not pending.done():
                        break
                chunk = await pending
                pending = None
                if chunk is None:
                    return Reply(query_id, fmt, held.summary(), held.data)
                held = held.merge(chunk)
        except BaseException:
            if pending is not None:
                pending.cancel()
                with suppress(BaseException):
                    await pending
            await chunks.aclose()
            raise
        return Reply(query_id, fmt, held.summary(), held.data, rest=_data_of(chunks, pending))

    async def _stream_chunks(
        self,
        user: str,
        level: int,
        database: str,
        params: RequestParams,
        sql: str | bytes,
        fmt: str,
    ) -> AsyncGenerator[QueryOutcome, None]:
        # Each engine chunk of ArrowStream is a whole Arrow stream: joined into one.
        joiner = ArrowStreamJoiner() if fmt == "ArrowStream" else None
        async with self._connection(user, level, params, sql) as connection:
            await self.engine.run(connection.prepare, database, params.settings)
            # A generator: the query is sent by the first ``next``, in the engine's pool.
            iterator = connection.stream(sql, fmt, params.query_params)
            try:
                while True:
                    chunk = await self.engine.run(next, iterator, None)
                    if chunk is None:
                        if joiner is not None:
                            yield QueryOutcome(joiner.finish())
                        return
                    if joiner is not None:
                        chunk.data = joiner.feed(chunk.data)
                    yield chunk
            finally:
                await self.engine.run(iterator.close)

    async def _insert(
        self,
        user: str,
        level: int,
        database: str,
        params: RequestParams,
        query_id: str,
        statement: str,
        fmt: str,
        first: bytes,
        rest: AsyncIterator[bytes] | None,
    ) -> Reply:
        statement_text = statement.encode("latin-1").decode("utf-8", errors="replace")
        run = self.engine.run
        async with self._connection(user, level, params, statement_text) as connection:
            await run(connection.prepare, database, params.settings)
            inserter = await run(connection.begin_insert, statement_text, fmt)
            try:
                pending = bytearray(first)
                if rest is not None:
                    async for chunk in rest:
                        pending += chunk
                        if len(pending) >= INSERT_CHUNK_BYTES:
                            await run(_append, inserter, bytes(pending))
                            pending.clear()
                if pending:
                    await run(_append, inserter, bytes(pending))
                result = await run(_finish, inserter)
            except BaseException:
                await run(_cancel, inserter)
                raise
        outcome = QueryOutcome(
            b"",
            written_rows=result.rows_written,
            written_bytes=result.bytes_written,
            elapsed_ns=int(result.elapsed * 1e9),
        )
        return Reply(query_id, None, outcome.summary(), b"")


def _is_utf8(data: bytes | bytearray) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _data_of(
    chunks: AsyncGenerator[QueryOutcome, None],
    pending: asyncio.Future[QueryOutcome | None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The data of the chunks still to come (``pending``: the next one, already asked for)."""
    try:
        if pending is not None:
            first = await pending
            if first is None:
                return
            yield first.data
        async for chunk in chunks:
            yield chunk.data
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with suppress(BaseException):
                await pending
        await chunks.aclose()


def _append(inserter: StreamingInserter, data: bytes) -> None:
    try:
        inserter.append(data)  # type: ignore[no-untyped-call]
    except RuntimeError as exc:
        raise ClickHouseError.from_engine(exc) from None


def _finish(inserter: StreamingInserter) -> InsertResult:
    try:
        return inserter.finish()
    except RuntimeError as exc:
        raise ClickHouseError.from_engine(exc) from None


def _cancel(inserter: StreamingInserter) -> None:
    with suppress(Exception):  # the original error is what the client needs
        inserter.cancel()  # type: ignore[no-untyped-call]
