"""ClickHouse's HTTP protocol, as pure functions: parameters, statements, errors, compression.

Nothing here does I/O, so each rule (which URL parameters are settings, where the data of an
``INSERT ... FORMAT X`` starts, which HTTP status an error code gets) is unit-testable.
"""

from __future__ import annotations

import re
import secrets
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import lz4.block
import lz4.frame
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

# URL parameters ClickHouse's HTTP handler consumes itself (never settings).
RESERVED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "role",
    }
)

# Real ClickHouse settings that only steer the HTTP layer; the engine never needs them, and
# keeping them out of SET lets read-only connections serve clients that send them.
HTTP_LAYER_SETTINGS = frozenset(
    {
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
        "http_response_buffer_size",
        "http_wait_end_of_query",
        "http_write_exception_in_output_format",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)

# Output formats whose chunks concatenate into one valid stream (no header/footer/statistics),
# so large results can be streamed block by block.
STREAMABLE_FORMATS = frozenset(
    {
        "Native",
        "RowBinary",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "CSV",
        "JSONEachRow",
        "JSONCompactEachRow",
        "JSONStringsEachRow",
        "ArrowStream",
    }
)

CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}

_BINARY_FORMATS = frozenset({"Native", "RowBinary", "Parquet", "Arrow", "ArrowStream", "ORC"})


def content_type(fmt: str | None) -> str:
    """The Content-Type ClickHouse sends for an output format."""
    if fmt in CONTENT_TYPES:
        return CONTENT_TYPES[fmt]
    if fmt in _BINARY_FORMATS:
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


# ClickHouse's own mapping of error names to HTTP statuses (Server/HTTP/exceptionCodeToHTTPStatus).
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        [
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ],
        403,
    ),
    **dict.fromkeys(
        [
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ],
        400,
    ),
    **dict.fromkeys(
        [
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ],
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

# Codes this module raises itself (numbers are ClickHouse's).
SYNTAX_ERROR = 62
NOT_IMPLEMENTED = 48
READONLY = 164
AUTHENTICATION_FAILED = 516
UNKNOWN_FORMAT = 73
QUERY_IS_TOO_LARGE = 202
UNSUPPORTED_METHOD = 1
STD_EXCEPTION = 1001
CANNOT_DECOMPRESS = 271
UNKNOWN_SETTING = 115
THERE_IS_NO_SESSION = 113
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
USER_SESSION_LIMIT_EXCEEDED = 700
_NAMES = {
    THERE_IS_NO_SESSION: "THERE_IS_NO_SESSION",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    USER_SESSION_LIMIT_EXCEEDED: "USER_SESSION_LIMIT_EXCEEDED",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    READONLY: "READONLY",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    UNSUPPORTED_METHOD: "UNSUPPORTED_METHOD",
    STD_EXCEPTION: "STD_EXCEPTION",
}

_CODE_RE = re.compile(r"Code: (\d+)\. (.*)", re.DOTALL)
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]*)\)\s*$")


class ClickHouseError(Exception):
    """An error as ClickHouse reports it: numeric code, name and ``DB::Exception`` message."""

    def __init__(self, code: int, message: str, name: str | None = None) -> None:
        self.code = code
        self.name = name or _NAMES.get(code, "")
        self.message = message
        super().__init__(f"Code: {code}. {message}")

    @classmethod
    def build(cls, code: int, text: str) -> ClickHouseError:
        """An error raised by this server (not the engine), worded like ClickHouse's."""
        name = _NAMES.get(code, "")
        return cls(code, f"DB::Exception: {text}. ({name})", name)

    @classmethod
    def from_engine(cls, exc: BaseException) -> ClickHouseError:
        """Parse ``Code: N. DB::Exception: ... (NAME)`` out of a chdb exception."""
        text = str(exc)
        match = _CODE_RE.search(text)
        if match is None:
            return cls(
                STD_EXCEPTION, f"DB::Exception: {text.strip()}. (STD_EXCEPTION)", "STD_EXCEPTION"
            )
        message = match.group(2).strip()
        name_match = _NAME_RE.search(message)
        return cls(int(match.group(1)), message, name_match.group(1) if name_match else None)

    @property
    def http_status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def body(self, version: str) -> bytes:
        trailer = "" if "(version " in self.message else f" (version {version})"
        return f"Code: {self.code}. {self.message}{trailer}\n".encode()


def truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class RequestParams:
    """A request's URL (and form) parameters sorted the way ClickHouse's HTTP handler sorts them."""

    query: str = ""
    database: str | None = None
    default_format: str | None = None
    query_id: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] = field(default_factory=dict)
    http_settings: dict[str, str] = field(default_factory=dict)
    reserved: dict[str, str] = field(default_factory=dict)

    @property
    def wait_end_of_query(self) -> bool:
        return truthy(self.reserved.get("wait_end_of_query"))

    @property
    def enable_http_compression(self) -> bool:
        return truthy(self.http_settings.get("enable_http_compression"))


def classify_params(items: Iterable[tuple[str, str]], headers: dict[str, str]) -> RequestParams:
    """Split parameters into query, database, format, settings and server-side query params."""
    params = RequestParams(
        database=headers.get("x-clickhouse-database") or None,
        default_format=headers.get("x-clickhouse-format") or None,
        query_id=headers.get("x-clickhouse-query-id") or None,
    )
    for key, value in items:
        if not key:
            continue
        if key == "query":
            params.query = value
        elif key == "database":
            params.database = params.database or value or None
        elif key == "default_format":
            params.default_format = params.default_format or value or None
        elif key == "query_id":
            params.query_id = value or None
        elif key.startswith("param_"):
            params.query_params[key[len("param_") :]] = value
        elif key in RESERVED_PARAMS:
            params.reserved[key] = value
        elif key in HTTP_LAYER_SETTINGS:
            params.http_settings[key] = value
        else:
            params.settings[key] = value
    return params


# --- statements -------------------------------------------------------------------------------

_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_HEREDOC_RE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "quoted", "punct"
    text: str
    start: int
    end: int


def tokens(sql: str, start: int = 0) -> Iterable[Token]:
    """ClickHouse SQL tokens with comments dropped; strings and quoted names kept whole."""
    i, n = start, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "$" and (heredoc := _HEREDOC_RE.match(sql, i)):
            end = sql.find(heredoc.group(0), heredoc.end())
            j = n if end < 0 else end + len(heredoc.group(0))
            yield Token("quoted", sql[i:j], i, j)
            i = j
        elif ch in "'\"`":
            j = i + 1
            while j < n and sql[j] != ch:
                j += 2 if sql[j] == "\\" else 1
            yield Token("quoted", sql[i : j + 1], i, min(j + 1, n))
            i = j + 1
        else:
            match = _WORD_RE.match(sql, i)
            if match:
                yield Token("word", match.group(0), i, match.end())
                i = match.end()
            else:
                yield Token("punct", ch, i, i + 1)
                i += 1


def first_keyword(sql: str) -> str:
    """The statement's first keyword, upper-cased ('' when there is none)."""
    for token in tokens(sql):
        return token.text.upper() if token.kind == "word" else ""
    return ""


_NO_RESULT_KEYWORDS = frozenset(
    {
        "CREATE",
        "DROP",
        "ALTER",
        "INSERT",
        "SET",
        "USE",
        "RENAME",
        "TRUNCATE",
        "OPTIMIZE",
        "SYSTEM",
        "GRANT",
        "REVOKE",
        "ATTACH",
        "DETACH",
        "EXCHANGE",
        "UNDROP",
        "DELETE",
        "UPDATE",
        "MOVE",
    }
)


def produces_result(sql: str) -> bool:
    """Whether a statement answers with a result (ClickHouse then sends X-ClickHouse-Format)."""
    return first_keyword(sql) not in _NO_RESULT_KEYWORDS


@dataclass(frozen=True)
class InsertWithData:
    """An ``INSERT ... FORMAT X`` (or ``VALUES``) whose data follows the statement."""

    statement: str
    """The INSERT without its FORMAT clause, as chdb's ``send_insert`` wants it."""
    format: str
    data_offset: int
    """Where the data starts in the text the statement was found in."""


def split_insert(text: str) -> InsertWithData | None:
    """Find where the data of an ``INSERT ... FORMAT X`` starts, as ClickHouse's parser does.

    ``text`` is the request's SQL and data decoded as latin-1 (so offsets are byte offsets).
    Data starts after the first newline following the format name, or after the whitespace
    when there is no newline. Returns None for other statements (``INSERT ... SELECT`` too).
    """
    stream = iter(tokens(text))
    first = next(stream, None)
    if first is not None and first.kind == "word" and first.text.upper() == "WITH":
        first = _top_level_insert(stream)  # WITH <expressions> INSERT INTO ...
    if first is None or first.kind != "word" or first.text.upper() != "INSERT":
        return None
    depth = 0
    table_seen = False
    previous: Token | None = None
    for token in stream:
        word = token.text.upper() if token.kind == "word" else ""
        if token.kind == "punct":
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                depth -= 1
        elif depth == 0 and word in {"INTO", "TABLE", "FUNCTION"} and not table_seen:
            pass
        elif depth == 0 and not table_seen:
            table_seen = True
        elif depth == 0 and word in {"SELECT", "WITH"}:
            return None
        elif depth == 0 and word == "VALUES":
            return InsertWithData(text[: token.start].rstrip(), "Values", token.end)
        elif depth == 0 and word == "FORMAT" and previous is not None:
            name = _WORD_RE.match(text, _skip_spaces(text, token.end))
            if name is None:
                return None
            return InsertWithData(
                text[: token.start].rstrip(), name.group(0), _data_start(text, name.end())
            )
        if table_seen and token.kind == "punct" and token.text == "." and depth == 0:
            table_seen = False  # db.table: the next word is still the table name
        previous = token
    return None


_NESTING = {"(": 1, ")": -1, "[": 1, "]": -1, "{": 1, "}": -1}


def _top_level_insert(stream: Iterator[Token]) -> Token | None:
    """After ``WITH``: the ``INSERT`` of ``WITH ... INSERT INTO``, None for a SELECT (whose
    aliases or CTEs may well be named ``insert``). Consumes the ``INTO`` after it."""
    depth = 0
    previous = ""
    candidate: Token | None = None
    for token in stream:
        word = token.text.upper() if token.kind == "word" else ""
        if candidate is not None and word == "INTO":
            return candidate
        candidate = None
        if token.kind == "punct":
            depth += _NESTING.get(token.text, 0)
        elif depth == 0 and word == "INSERT" and previous != "AS":
            candidate = token
        elif depth == 0 and word in {"SELECT", "FORMAT"}:
            return None
        previous = word
    return None


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _data_start(text: str, i: int) -> int:
    newline = text.find("\n", i)
    if newline >= 0 and text[i:newline].strip(" \t\r") == "":
        return newline + 1
    return _skip_spaces(text, i)


def output_format(sql: str, known_formats: frozenset[str]) -> str | None:
    """The name after the statement's last top-level ``FORMAT`` keyword, if it names a format."""
    found: str | None = None
    depth = 0
    after_format = False
    for token in tokens(sql):
        if token.kind == "punct":
            depth += {"(": 1, ")": -1}.get(token.text, 0)
            after_format = False
            continue
        if after_format and token.kind == "word" and token.text in known_formats:
            found = token.text
        after_format = depth == 0 and token.kind == "word" and token.text.upper() == "FORMAT"
    return found


def strip_statement(sql: str) -> str:
    """The statement without surrounding whitespace and trailing semicolons."""
    return sql.strip().rstrip(";").rstrip()


def check_single_statement(sql: str) -> None:
    """Refuse a body of several statements, as ClickHouse's HTTP interface does (code 62).

    Only a terminating ``;`` followed by nothing but comments and whitespace is allowed.
    """
    stream = iter(tokens(sql))
    for token in stream:
        if token.kind == "punct" and token.text == ";":
            rest = next(stream, None)
            if rest is not None:
                line = sql.count("\n", 0, token.start) + 1
                column = token.start - (sql.rfind("\n", 0, token.start) + 1) + 1
                raise ClickHouseError.build(
                    SYNTAX_ERROR,
                    "Syntax error (Multi-statements are not allowed): failed at position "
                    f"{token.start + 1} (line {line}, col {column}): {sql[token.start :][:50]}",
                )


# Statements that cannot leave state (temporary tables, settings, current database, roles) on
# the engine connection that ran them; after any other statement a pooled connection is closed
# instead of being handed to the next request.
_STATELESS_KEYWORDS = frozenset(
    {"SELECT", "WITH", "INSERT", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK"}
)


def leaves_connection_state(sql: str) -> bool:
    """Whether a statement may change what later statements on its connection see."""
    return first_keyword(sql) not in _STATELESS_KEYWORDS


# --- compression ------------------------------------------------------------------------------


class Decoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _MultiFrame:
    """Decodes concatenated frames (clickhouse-connect sends one lz4/zstd frame per block)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.decoder = self._new()

    def _new(
        self,
    ) -> lz4.frame.LZ4FrameDecompressor | zstandard.ZstdDecompressionObj | zlib._Decompress:
        if self.kind == "lz4":
            return lz4.frame.LZ4FrameDecompressor()
        if self.kind == "zstd":
            return zstandard.ZstdDecompressor().decompressobj()
        return zlib.decompressobj(wbits=47 if self.kind == "gzip" else 15)

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            chunk = self.decoder.decompress(data)
            out.append(chunk)
            if not self.decoder.eof:
                break
            data = self.decoder.unused_data
            self.decoder = self._new()
        return b"".join(out)

    def finish(self) -> bytes:
        return b""


def request_decoder(content_encoding: str | None) -> Decoder:
    """A decoder for the request body's ``Content-Encoding`` (lz4, zstd, gzip, deflate or none)."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in {"", "identity", "none"}:
        return _Identity()
    if encoding in {"lz4", "zstd", "gzip", "x-gzip", "deflate"}:
        return _MultiFrame("gzip" if encoding == "x-gzip" else encoding)
    raise ClickHouseError.build(
        NOT_IMPLEMENTED, f"Unknown HTTP request compression method '{encoding}'"
    )


class Encoder(Protocol):
    def feed(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class _Lz4Encoder:
    def __init__(self) -> None:
        self.compressor = lz4.frame.LZ4FrameCompressor()
        self.started = False

    def feed(self, data: bytes) -> bytes:
        head = b"" if self.started else self.compressor.begin()
        self.started = True
        return bytes(head + self.compressor.compress(data))

    def finish(self) -> bytes:
        head = b"" if self.started else self.compressor.begin()
        self.started = True
        return bytes(head + self.compressor.flush())


class _ZstdEncoder:
    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor().compressobj()

    def feed(self, data: bytes) -> bytes:
        return bytes(self.compressor.compress(data))

    def finish(self) -> bytes:
        return bytes(self.compressor.flush())


class _ZlibEncoder:
    def __init__(self, gzip: bool) -> None:
        self.compressor = zlib.compressobj(level=3, wbits=31 if gzip else 15)

    def feed(self, data: bytes) -> bytes:
        return self.compressor.compress(data)

    def finish(self) -> bytes:
        return self.compressor.flush()


RESPONSE_ENCODINGS = ("lz4", "zstd", "gzip", "deflate")


def choose_response_encoding(accept_encoding: str | None) -> str | None:
    """The first encoding the client accepts that this server can write."""
    for part in (accept_encoding or "").split(","):
        name = part.split(";")[0].strip().lower()
        if name in RESPONSE_ENCODINGS:
            return name
    return None


def response_encoder(encoding: str) -> Encoder:
    if encoding == "lz4":
        return _Lz4Encoder()
    if encoding == "zstd":
        return _ZstdEncoder()
    return _ZlibEncoder(gzip=encoding == "gzip")


# --- ClickHouse's internal compression (``compress=1`` / ``decompress=1``) ---------------------
# Blocks of: CityHash128 (v1.0.2) of the rest, method byte, compressed size (with the 9-byte
# header) and uncompressed size as little-endian UInt32, then the compressed bytes. JDBC-based
# tools (DBeaver, Metabase) use it by default.

_BLOCK_HEADER = struct.Struct("<BII")
_METHOD_NONE, _METHOD_LZ4, _METHOD_ZSTD = 0x02, 0x82, 0x90
_MAX_BLOCK = 1 << 20
CHECKSUM_DOESNT_MATCH = 40
UNKNOWN_COMPRESSION_METHOD = 89
_NAMES[CHECKSUM_DOESNT_MATCH] = "CHECKSUM_DOESNT_MATCH"
_NAMES[UNKNOWN_COMPRESSION_METHOD] = "UNKNOWN_COMPRESSION_METHOD"


def _block_checksum(block: bytes) -> bytes:
    value: int = CityHash128(block)
    return (value >> 64).to_bytes(8, "little") + (value & ((1 << 64) - 1)).to_bytes(8, "little")


def compress_blocks(data: bytes) -> bytes:
    """``data`` in ClickHouse's compressed-block format (LZ4), at most 1 MiB per block."""
    out = bytearray()
    for start in range(0, len(data), _MAX_BLOCK):
        raw = data[start : start + _MAX_BLOCK]
        packed = lz4.block.compress(raw, store_size=False)
        block = _BLOCK_HEADER.pack(_METHOD_LZ4, len(packed) + _BLOCK_HEADER.size, len(raw)) + packed
        out += _block_checksum(block) + block
    return bytes(out)


class BlockEncoder:
    """Response encoder for ``compress=1``."""

    def feed(self, data: bytes) -> bytes:
        return compress_blocks(data)

    def finish(self) -> bytes:
        return b""


class BlockDecoder:
    """Request decoder for ``decompress=1``: checks each block's checksum, then decompresses."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = bytearray()
        while len(self.buffer) >= 16 + _BLOCK_HEADER.size:
            method, size, raw_size = _BLOCK_HEADER.unpack_from(self.buffer, 16)
            if len(self.buffer) < 16 + size:
                break
            block = bytes(self.buffer[16 : 16 + size])
            if _block_checksum(block) != bytes(self.buffer[:16]):
                raise ClickHouseError.build(
                    CHECKSUM_DOESNT_MATCH, "Checksum doesn't match: corrupted data"
                )
            del self.buffer[: 16 + size]
            payload = block[_BLOCK_HEADER.size :]
            if method == _METHOD_LZ4:
                out += lz4.block.decompress(payload, uncompressed_size=raw_size)
            elif method == _METHOD_ZSTD:
                out += zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_size)
            elif method == _METHOD_NONE:
                out += payload
            else:
                raise ClickHouseError.build(
                    UNKNOWN_COMPRESSION_METHOD, f"Unknown compression method: {method:#x}"
                )
        return bytes(out)

    def finish(self) -> bytes:
        if self.buffer:
            raise ClickHouseError.build(
                CANNOT_DECOMPRESS, "Request body ends inside a compressed block"
            )
        return b""


class ChainedCodec:
    """Two codecs applied one after the other (internal compression inside HTTP compression)."""

    def __init__(self, first: Encoder | Decoder, second: Encoder | Decoder) -> None:
        self.first = first
        self.second = second

    def feed(self, data: bytes) -> bytes:
        return self.second.feed(self.first.feed(data))

    def finish(self) -> bytes:
        return self.second.feed(self.first.finish()) + self.second.finish()


# --- streamed results -------------------------------------------------------------------------

_ARROW_CONTINUATION = b"\xff\xff\xff\xff"
_ARROW_END = _ARROW_CONTINUATION + b"\x00\x00\x00\x00"


class ArrowStreamJoiner:
    """Joins the engine's ``ArrowStream`` chunks into one Arrow IPC stream.

    Each chunk the engine yields is a complete stream (schema, batches, end marker); sent one
    after the other, a reader stops at the first end marker and silently drops every later row.
    So: the first chunk's schema is kept, later chunks lose their (identical) schema message,
    every chunk loses its end marker, and ``finish`` writes the one end marker.
    """

    def __init__(self) -> None:
        self.schema: bytes | None = None

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        if not data.startswith(_ARROW_CONTINUATION) or not data.endswith(_ARROW_END):
            raise ClickHouseError.build(
                STD_EXCEPTION, "Unexpected ArrowStream chunk from the engine"
            )
        (metadata_size,) = struct.unpack_from("<i", data, 4)
        schema = data[: 8 + metadata_size]  # a schema message has no body
        body = data[: -len(_ARROW_END)]
        if self.schema is None:
            self.schema = schema
            return body
        if schema != self.schema:
            raise ClickHouseError.build(
                STD_EXCEPTION, "ArrowStream chunks of one result have different schemas"
            )
        return body[len(schema) :]

    def finish(self) -> bytes:
        return _ARROW_END if self.schema is not None else b""


EXCEPTION_MARKER = b"__exception__"
EXCEPTION_TAG_LENGTH = 16
MAX_EXCEPTION_BYTES = 16 * 1024


def new_exception_tag() -> str:
    """A random tag for ``X-ClickHouse-Exception-Tag`` (16 alphanumerics, as ClickHouse sends)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(EXCEPTION_TAG_LENGTH))


def exception_block(tag: str, message: bytes) -> bytes:
    """An error written into a result whose headers (status 200) are already sent.

    ClickHouse (25.11+) ends such a response with ``__exception__``, the tag of the response's
    ``X-ClickHouse-Exception-Tag`` header, the ``Code: N. DB::Exception`` text, its length and the
    tag again; clients (clickhouse-connect) look for exactly this to raise instead of returning
    the rows read so far.
    """
    overhead = 2 * len(EXCEPTION_MARKER) + 2 * EXCEPTION_TAG_LENGTH + 19
    text = message[: MAX_EXCEPTION_BYTES - overhead]
    if not text.endswith(b"\n"):
        text += b"\n"
    mark, crlf, tag_bytes = EXCEPTION_MARKER, b"\r\n", tag.encode()
    length = str(len(text)).encode()
    return (
        crlf
        + mark
        + crlf
        + tag_bytes
        + crlf
        + text
        + length
        + b" "
        + tag_bytes
        + crlf
        + mark
        + crlf
    )
