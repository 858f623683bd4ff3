"""What one HTTP request to the embedded server does, independent of the web framework.

``QueryService`` authenticates, decides the readonly level, database, settings and formats,
then runs the statement on the engine: buffered, streamed (large SELECT results), or as a
streaming INSERT fed from the request body.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import suppress
from dataclasses import dataclass

from chdb.state.sqlitelike import InsertResult, StreamingInserter

from infra.clickhouse_server.engine import Engine, QueryOutcome
from infra.clickhouse_server.protocol import (
    AUTHENTICATION_FAILED,
    CANNOT_DECOMPRESS,
    QUERY_IS_TOO_LARGE,
    READONLY,
    STREAMABLE_FORMATS,
    SYNTAX_ERROR,
    BlockDecoder,
    ChainedCodec,
    ClickHouseError,
    Decoder,
    RequestParams,
    first_keyword,
    output_format,
    produces_result,
    request_decoder,
    split_insert,
    strip_statement,
    truthy,
)
from infra.clickhouse_server.settings import ClickHouseUser

# ClickHouse's max_query_size: the INSERT statement must start within this many bytes.
HEAD_BYTES = 256 * 1024
INSERT_CHUNK_BYTES = 1 << 20
# ClickHouse's http_response_buffer_size: results this small are answered in one piece.
RESPONSE_BUFFER_BYTES = 1 << 20
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

    def __init__(self, engine: Engine, users: list[ClickHouseUser], max_body_bytes: int) -> None:
        self.engine = engine
        self.users = {user.name: user for user in users}
        self.max_body_bytes = max_body_bytes

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
        if insert is not None:
            return await self._insert(
                level,
                database,
                params,
                query_id,
                insert.statement,
                insert.format,
                bytes(head[insert.data_offset :]),
                None if body_done else reader,
            )
        if not body_done:
            async for chunk in reader:
                head += chunk
        sql = strip_statement(head.decode("utf-8", errors="replace"))
        if not sql:
            raise ClickHouseError.build(SYNTAX_ERROR, "Empty query")
        fmt = (
            output_format(sql, self.engine.output_formats)
            or params.default_format
            or "TabSeparated"
        )
        if (
            not params.wait_end_of_query
            and fmt in STREAMABLE_FORMATS
            and first_keyword(sql) in _SELECT_KEYWORDS
        ):
            return await self._stream(level, database, params, query_id, sql, fmt)
        async with self.engine.lease(level) as connection:
            await self.engine.run(connection.prepare, database, params.settings)
            outcome = await self.engine.run(connection.query, sql, fmt, params.query_params)
        result_format = fmt if outcome.data or produces_result(sql) else None
        return Reply(query_id, result_format, outcome.summary(), outcome.data)

    async def _stream(
        self, level: int, database: str, params: RequestParams, query_id: str, sql: str, fmt: str
    ) -> Reply:
        """Stream a large result; like ClickHouse, hold the first ``HEAD_BYTES`` back so that
        small results get complete headers (summary) and early errors a proper status."""
        chunks = self._stream_chunks(level, database, params, sql, fmt)
        held = QueryOutcome(b"")
        try:
            while len(held.data) < RESPONSE_BUFFER_BYTES:
                chunk = await anext(chunks, None)
                if chunk is None:
                    return Reply(query_id, fmt, held.summary(), held.data)
                held = held.merge(chunk)
        except BaseException:
            await chunks.aclose()
            raise
        return Reply(query_id, fmt, held.summary(), held.data, rest=_data_of(chunks))

    async def _stream_chunks(
        self, level: int, database: str, params: RequestParams, sql: str, fmt: str
    ) -> AsyncGenerator[QueryOutcome, None]:
        async with self.engine.lease(level) as connection:
            await self.engine.run(connection.prepare, database, params.settings)
            # A generator: the query is sent by the first ``next``, in the engine's pool.
            iterator = connection.stream(sql, fmt, params.query_params)
            try:
                while True:
                    chunk = await self.engine.run(next, iterator, None)
                    if chunk is None:
                        return
                    yield chunk
            finally:
                await self.engine.run(iterator.close)

    async def _insert(
        self,
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
        async with self.engine.lease(level) as connection:
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


async def _data_of(chunks: AsyncGenerator[QueryOutcome, None]) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in chunks:
            yield chunk.data
    finally:
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
