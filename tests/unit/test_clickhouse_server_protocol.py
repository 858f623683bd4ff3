"""Pure rules of the embedded ClickHouse server's HTTP protocol and of the migration files."""

from __future__ import annotations

import base64
import gzip
import zlib
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from infra.clickhouse import parse_url
from infra.clickhouse_server.engine import Engine
from infra.clickhouse_server.protocol import (
    BlockDecoder,
    ClickHouseError,
    RequestParams,
    choose_response_encoding,
    classify_params,
    compress_blocks,
    output_format,
    request_decoder,
    response_encoder,
    split_insert,
)
from infra.clickhouse_server.service import BodyReader, Credentials, QueryService, credentials_from
from infra.clickhouse_server.settings import ClickHouseUser
from infra.migrate import split_statements, substitute

FORMATS = frozenset({"Native", "JSON", "JSONEachRow", "TabSeparated", "CSV"})


def test_insert_data_starts_after_the_newline_following_the_format_name() -> None:
    text = "INSERT INTO db.t (`a`, format) FORMAT Native  \n\x01\x02binary FORMAT x"
    found = split_insert(text)
    assert found is not None
    assert (found.statement, found.format) == ("INSERT INTO db.t (`a`, format)", "Native")
    assert text[found.data_offset :] == "\x01\x02binary FORMAT x"


def test_insert_data_without_a_newline_starts_after_the_whitespace() -> None:
    found = split_insert("insert into t format CSV   1,2\n")
    assert found is not None and found.format == "CSV"
    assert "insert into t format CSV   1,2\n"[found.data_offset :] == "1,2\n"


def test_insert_values_stream_as_the_values_format() -> None:
    text = "INSERT INTO t (s) VALUES ('FORMAT Native'), ('x')"
    found = split_insert(text)
    assert found is not None
    assert (found.statement, found.format) == ("INSERT INTO t (s)", "Values")
    assert text[found.data_offset :] == " ('FORMAT Native'), ('x')"


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t SELECT * FROM s FORMAT Native",
        "SELECT 1 FORMAT Native",
        "-- INSERT INTO t FORMAT Native\nSELECT 1",
        "INSERT INTO t WITH 1 AS x SELECT x",
    ],
)
def test_statements_without_inline_data_are_not_split(sql: str) -> None:
    assert split_insert(sql) is None


def test_output_format_is_the_last_top_level_format_clause() -> None:
    assert output_format("SELECT format FROM t\n FORMAT Native", FORMATS) == "Native"
    assert output_format("SELECT 'FORMAT JSON' FORMAT CSV", FORMATS) == "CSV"
    assert output_format("SELECT 1 -- FORMAT JSON", FORMATS) is None
    assert output_format("SELECT * FROM format(JSON, '{}')", FORMATS) is None


def test_url_parameters_split_into_settings_query_params_and_reserved() -> None:
    params = classify_params(
        [
            ("query", "SELECT {x:UInt8}"),
            ("database", "db"),
            ("param_x", "7"),
            ("max_threads", "2"),
            ("session_id", "s"),
            ("wait_end_of_query", "1"),
            ("enable_http_compression", "1"),
            ("query_id", "q1"),
        ],
        {"x-clickhouse-format": "JSON"},
    )
    assert params.query == "SELECT {x:UInt8}"
    assert (params.database, params.default_format, params.query_id) == ("db", "JSON", "q1")
    assert params.query_params == {"x": "7"}
    assert params.settings == {"max_threads": "2"}
    assert params.wait_end_of_query and params.enable_http_compression


def test_engine_errors_keep_code_name_and_get_clickhouse_status() -> None:
    unknown = ClickHouseError.from_engine(
        RuntimeError(
            "Streaming query failed: Code: 60. DB::Exception: Unknown table 'x'. (UNKNOWN_TABLE)"
        )
    )
    assert (unknown.code, unknown.name, unknown.http_status) == (60, "UNKNOWN_TABLE", 404)
    assert unknown.body("26.9").startswith(b"Code: 60. DB::Exception: Unknown table 'x'.")
    assert (
        ClickHouseError.from_engine(
            RuntimeError("Code: 62. DB::Exception: x. (SYNTAX_ERROR)")
        ).http_status
        == 400
    )
    assert (
        ClickHouseError.from_engine(
            RuntimeError("Code: 164. DB::Exception: ro. (READONLY)")
        ).http_status
        == 500
    )
    assert ClickHouseError.from_engine(RuntimeError("boom")).code == 1001


def test_request_decoders_read_concatenated_frames() -> None:
    payload = b"INSERT INTO t FORMAT CSV\n" + b"1,2\n" * 1000
    halves = [payload[:500], payload[500:]]
    bodies = {
        "lz4": b"".join(lz4.frame.compress(h) for h in halves),
        "zstd": b"".join(zstandard.ZstdCompressor().compress(h) for h in halves),
        "gzip": gzip.compress(payload),
        "deflate": zlib.compress(payload),
        None: payload,
    }
    for encoding, body in bodies.items():
        decoder = request_decoder(encoding)
        out = b"".join(decoder.feed(body[i : i + 77]) for i in range(0, len(body), 77))
        assert out + decoder.finish() == payload, encoding
    with pytest.raises(ClickHouseError):
        request_decoder("snappy-ish")


def test_response_encoding_follows_the_client_and_round_trips() -> None:
    assert choose_response_encoding("lz4,zstd,br,gzip,deflate") == "lz4"
    assert choose_response_encoding("br, gzip;q=0.8") == "gzip"
    assert choose_response_encoding("br") is None
    decode = {
        "lz4": lz4.frame.decompress,
        "zstd": zstandard.ZstdDecompressor().decompressobj,
        "gzip": gzip.decompress,
    }
    data = b"abc" * 10_000
    for name in ("lz4", "gzip"):
        encoder = response_encoder(name)
        assert decode[name](encoder.feed(data) + encoder.finish()) == data


def test_credentials_come_from_headers_basic_auth_or_parameters_but_never_mixed() -> None:
    basic = "Basic " + base64.b64encode(b"analyst:pw").decode()
    assert credentials_from({"authorization": basic}, {}).user == "analyst"
    assert credentials_from({"x-clickhouse-user": "u", "x-clickhouse-key": "k"}, {}).password == "k"
    assert credentials_from({}, {"user": "p", "password": "q"}).user == "p"
    assert credentials_from({}, {}).user == "default"
    with pytest.raises(ClickHouseError) as mixed:
        credentials_from({"authorization": basic}, {"user": "x"})
    assert mixed.value.code == 516


def test_client_urls_give_user_password_host_port_and_database() -> None:
    target = parse_url("http://an%40lyst:p%3Ass@ch.example:9000/metrics")
    assert (target.username, target.password, target.host, target.port) == (
        "an@lyst",
        "p:ss",
        "ch.example",
        9000,
    )
    assert target.database == "metrics"
    assert parse_url("http://127.0.0.1:8123/", "other").database == "other"
    assert parse_url("https://h").port == 8443


def test_migration_files_split_on_line_ending_semicolons_without_comment_lines() -> None:
    text = (
        "-- a comment; with semicolons;\n"
        "CREATE TABLE {db}.t\n(x String DEFAULT 'a;b')\nENGINE = Memory;\n\nSELECT 1;\n"
    )
    assert split_statements(text) == [
        "CREATE TABLE {db}.t\n(x String DEFAULT 'a;b')\nENGINE = Memory",
        "SELECT 1",
    ]
    assert (
        substitute("{db}.t {dbx} {raw_ttl_days}", {"db": "m", "raw_ttl_days": "30"})
        == "m.t {dbx} 30"
    )


def _service() -> QueryService:
    users = [
        ClickHouseUser(name="default"),
        ClickHouseUser(name="analyst", password="analyst", readonly=True),
    ]
    return QueryService(Engine(Path("/nonexistent"), max_connections=1), users, 1 << 20)


def test_users_are_checked_by_name_and_password() -> None:
    service = _service()
    assert service.authenticate(Credentials("analyst", "analyst")).readonly
    for wrong in (Credentials("analyst", "nope"), Credentials("ghost", "")):
        with pytest.raises(ClickHouseError) as refused:
            service.authenticate(wrong)
        assert (refused.value.code, refused.value.http_status) == (516, 403)


def test_requests_may_only_make_the_readonly_level_stricter() -> None:
    service = _service()
    default, analyst = service.users["default"], service.users["analyst"]
    assert service.readonly_level(default, "POST", RequestParams()) == 0
    assert service.readonly_level(default, "GET", RequestParams()) == 2
    assert service.readonly_level(analyst, "POST", RequestParams()) == 1
    assert service.readonly_level(default, "POST", RequestParams(settings={"readonly": "1"})) == 1
    for user, method, level in (
        (analyst, "POST", "0"),
        (analyst, "POST", "2"),
        (default, "GET", "0"),
    ):
        with pytest.raises(ClickHouseError) as refused:
            service.readonly_level(user, method, RequestParams(settings={"readonly": level}))
        assert refused.value.code == 164


# A compressed block written by ClickHouse itself (a MergeTree part holding UInt8 1, 2, 3).
CLICKHOUSE_BLOCK = bytes.fromhex("d9a2a5fb6cd40dad7f5693f08062f052820d0000000300000030010203")


def test_internal_compression_matches_clickhouse_blocks() -> None:
    decoder = BlockDecoder()
    assert decoder.feed(CLICKHOUSE_BLOCK[:10]) == b""
    assert decoder.feed(CLICKHOUSE_BLOCK[10:]) == b"\x01\x02\x03"
    assert compress_blocks(b"\x01\x02\x03") == CLICKHOUSE_BLOCK
    big = bytes(range(256)) * 10_000
    decoder = BlockDecoder()
    assert decoder.feed(compress_blocks(big)) + decoder.finish() == big


async def test_request_bodies_over_the_limit_are_refused_after_decompression() -> None:
    async def body():
        yield gzip.compress(b"x" * 5000)

    reader = BodyReader(body(), "gzip", limit=4096)
    with pytest.raises(ClickHouseError) as refused:
        async for _ in reader:
            pass
    assert (refused.value.code, refused.value.http_status) == (202, 413)
