"""The error middleware: service errors as JSON bodies, unexpected ones as 500 with a request id
and never a trace (no services needed)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from management_api.errors import Conflict
from management_api.http import error_middleware


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internal detail")


async def conflict(request: web.Request) -> web.Response:
    raise Conflict("already there", details={"name": "x"})


async def test_unexpected_errors_are_500_with_a_request_id_and_no_trace() -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/boom", boom)
    app.router.add_get("/conflict", conflict)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/boom")
        body = await r.json()
        assert r.status == 500 and body["error"]["code"] == "INTERNAL_ERROR"
        assert len(body["error"]["details"]["request_id"]) == 32
        assert "secret" not in await r.text() and "Traceback" not in await r.text()
        r = await client.get("/conflict", headers={"X-Request-Id": "abc"})
        assert r.status == 409 and r.headers["X-Request-Id"] == "abc"
        assert await r.json() == {
            "error": {"code": "CONFLICT", "message": "already there", "details": {"name": "x"}}
        }
