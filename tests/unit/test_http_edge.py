"""infra.http's bounded inflation and encoding checks, ingress's feature bounds and capped error
details, and the dashboard CSP's hash of the /docs script (no services needed)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import zlib
from typing import Any

import pytest

from infra import http
from ingress.validation import FLOAT32_MAX, MAX_REPORTED_NAMES, FeatureValidator, InvalidInput
from management_api.docs_page import DOCS_HTML
from management_api.http import DASHBOARD_CSP
from schemas import FeatureSpec, FeatureType

BOMB = gzip.compress(b"\0" * (1024 * 1024), compresslevel=9) * 200  # 200 MiB decoded


async def test_inflate_stops_at_the_limit_without_decoding_the_whole_bomb() -> None:
    with pytest.raises(http.BodyTooLarge) as caught:
        await http.inflate(BOMB, "gzip", 1024 * 1024)
    assert caught.value.status == 413 and caught.value.details == {"max_bytes": 1024 * 1024}


async def test_inflate_decodes_gzip_multi_member_zlib_and_raw_deflate() -> None:
    body = b'{"a": 1}' * 1000
    assert await http.inflate(gzip.compress(body), "gzip", 10**6) == body
    assert (
        await http.inflate(gzip.compress(body[:4000]) + gzip.compress(body[4000:]), "gzip", 10**6)
        == body
    )
    assert await http.inflate(zlib.compress(body), "deflate", 10**6) == body
    raw = zlib.compressobj(wbits=-15)
    assert await http.inflate(raw.compress(body) + raw.flush(), "deflate", 10**6) == body


async def test_gzip_with_thousands_of_members_is_a_400_not_quadratic_work() -> None:
    """40,000 empty members in 800 KB (2 s of CPU to walk, each member copying the rest) are
    refused once past ``MAX_GZIP_MEMBERS``; that many members still decode."""
    with pytest.raises(http.BodyError) as caught:
        await http.inflate(gzip.compress(b"") * 40_000, "gzip", 10**6)
    assert caught.value.status == 400 and "members" in str(caught.value)
    allowed = gzip.compress(b"[1]") + gzip.compress(b"") * (http.MAX_GZIP_MEMBERS - 1)
    assert await http.inflate(allowed, "gzip", 10**6) == b"[1]"


@pytest.mark.parametrize(
    "data", [b"\x1f\x8bnot gzip at all", gzip.compress(b"x" * 1000, mtime=0)[:-12]]
)
async def test_corrupt_or_truncated_gzip_is_a_400(data: bytes) -> None:
    with pytest.raises(http.BodyError) as caught:
        await http.inflate(data, "gzip", 10**6)
    assert caught.value.status == 400


class FakeRequest:
    def __init__(self, encoding: str) -> None:
        self.headers = {"Content-Encoding": encoding}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", "identity"),
        ("identity", "identity"),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        ("deflate", "deflate"),
    ],
)
def test_supported_content_encodings(header: str, expected: str) -> None:
    assert http.content_encoding(FakeRequest(header)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, br", "compress"])
def test_other_content_encodings_are_415(header: str) -> None:
    with pytest.raises(http.UnsupportedEncoding) as caught:
        http.content_encoding(FakeRequest(header))  # type: ignore[arg-type]
    assert caught.value.status == 415


VALIDATOR = FeatureValidator(
    [
        FeatureSpec(name="x", type=FeatureType.NUMBER),
        FeatureSpec(name="n", type=FeatureType.INTEGER),
    ]
)


@pytest.mark.parametrize(
    "row", [{"x": 1e308, "n": 1}, {"x": -1e39, "n": 1}, {"x": 1.0, "n": 10**400}]
)
def test_numbers_beyond_float32_are_invalid_and_named(row: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.row(row)
    (name,) = caught.value.details["mistyped"]
    assert row[name] not in (1, 1.0) and name in caught.value.message


def test_numbers_within_float32_are_valid() -> None:
    assert VALIDATOR.row({"x": FLOAT32_MAX, "n": -(2**100)}) == [FLOAT32_MAX, -(2**100)]


def test_unknown_fields_are_capped_with_a_count() -> None:
    row = {"x": 1, "n": 1, **{f"{'u' * 500}{i}": 1 for i in range(10_000)}}
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.row(row)
    details = caught.value.details
    assert len(details["unexpected"]) == MAX_REPORTED_NAMES
    assert details["unexpected_count"] == 10_000
    assert all(len(name) <= 65 for name in details["unexpected"])
    assert "and 9980 more" in caught.value.message and len(caught.value.message) < 2000


def test_dashboard_csp_allows_exactly_the_docs_page_inline_script() -> None:
    scripts = re.findall(r"<script>(.*?)</script>", DOCS_HTML, flags=re.S)
    assert scripts
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in DASHBOARD_CSP
    assert "'unsafe-inline'" not in DASHBOARD_CSP.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in DASHBOARD_CSP


def test_documented_algorithm_names_are_the_trainable_ones() -> None:
    from typing import get_args

    from management_api.algorithms import ALGORITHMS
    from schemas.resources import AlgorithmName

    assert set(get_args(AlgorithmName)) == set(ALGORITHMS)


def test_openapi_documents_login_401_and_a_single_object_upload_form() -> None:
    from management_api.openapi import build_openapi
    from management_api.routes import ROUTES

    document = build_openapi(ROUTES)
    assert {"401", "429"} <= set(document["paths"]["/api/auth/token"]["post"]["responses"])
    upload = document["paths"]["/api/models/upload"]["post"]["requestBody"]["content"]
    schema = upload["multipart/form-data"]["schema"]
    assert "allOf" not in schema and "file" in schema["required"]
    assert schema["properties"]["features"]["type"] == "string"  # a JSON string in a form
    train = document["paths"]["/api/models/train"]["post"]["requestBody"]["content"]
    algorithm = document["components"]["schemas"]["TrainBuiltinRequest"]["properties"]["algorithm"]
    assert "enum" in algorithm and "multipart/form-data" in train


# --- connection caps per client address, and edge errors in another server's shape ----------


def test_address_key_groups_ipv6_by_its_64_and_unmaps_ipv4() -> None:
    """One machine's /64 is one key (it cannot rotate through addresses to escape the cap)."""
    key = http.address_key
    assert key(("203.0.113.7", 5555)) == "203.0.113.7"
    assert key(("2001:db8:1:2::1", 5555, 0, 0)) == key(("2001:db8:1:2:ffff::9", 1, 0, 0))
    assert key(("2001:db8:1:2::1", 5555, 0, 0)) == "2001:db8:1:2::/64"
    assert key(("2001:db8:1:3::1", 5555, 0, 0)) != key(("2001:db8:1:2::1", 5555, 0, 0))
    assert key(("::ffff:198.51.100.4", 80, 0, 0)) == "198.51.100.4"
    assert key(("fe80::1%eth0", 80, 0, 2)) == "fe80::/64"
    assert key(None) is None and key("/run/sock") is None


def test_busy_answer_is_a_complete_503_with_retry_after_in_the_renderers_shape() -> None:
    raw = http.busy_response(http.render_json, " from this address")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nRetry-After: 1" in head and b"\r\nConnection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert b"application/json" in head and b"from this address" in body

    def text(status: int, code: str, message: str, details: dict[str, Any]) -> Any:
        return f"Code: 203. {message}\n".encode(), {"Content-Type": "text/plain", "X-Code": "203"}

    raw = http.busy_response(text, "")
    assert b"\r\nX-Code: 203" in raw and raw.endswith(
        b"\r\n\r\nCode: 203. too many open connections; retry shortly\n"
    )


def test_clickhouse_renderer_writes_clickhouse_errors() -> None:
    from aiohttp import web

    from infra.clickhouse_server.app import clickhouse_error_renderer

    render = clickhouse_error_renderer(web.Application())
    body, headers = render(503, "SERVICE_UNAVAILABLE", "too many open connections", {})
    assert body.startswith(b"Code: 203. DB::Exception: too many open connections. (NO_FREE_")
    assert headers["X-ClickHouse-Exception-Code"] == "203"
    body, headers = render(431, "HEADER_TOO_LARGE", "a header is too long", {"max_bytes": 10})
    assert body.startswith(b"Code: 27. DB::Exception: a header is too long (max_bytes: 10)")
    assert headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("exempt", [False, True])
async def test_per_address_cap_holds_loopback_unless_exempted(exempt: bool) -> None:
    """Loopback is held to the per-address cap like any address, unless configured otherwise."""
    import asyncio

    from aiohttp import web

    from infra.localnet import free_port

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    settings = http.HttpServerSettings(
        http_max_connections=10,
        http_max_connections_per_address=1,
        http_per_address_exempt_loopback=exempt,
        http_header_timeout_s=30,
    )
    port = free_port()
    runner = await http.start_app(app, "127.0.0.1", port, settings, shutdown_timeout=1)
    held = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        held[1].close()
        await runner.cleanup()
    assert answer.startswith(b"HTTP/1.1 200" if exempt else b"HTTP/1.1 503"), answer[:200]
