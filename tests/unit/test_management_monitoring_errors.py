"""How the monitoring routes answer ClickHouse failures (no services needed): an unreachable store
is 503 SERVICE_UNAVAILABLE; anything else (a query ClickHouse refuses, a bug) is not dressed up as
an outage but reaches the error middleware, which logs its traceback and answers 500 with a
request id."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from management_api.errors import ServiceUnavailable
from management_api.http import error_middleware
from management_api.monitoring import Monitoring


def monitoring(connect_error: BaseException | None = None) -> Monitoring:
    async def connect() -> Any:
        if connect_error is not None:
            raise connect_error
        return object()  # the queries object the call receives; these calls never touch it

    return Monitoring(exports=None, connect=connect, timeout_s=5)  # type: ignore[arg-type]


def failing(exc: BaseException) -> Any:
    async def call(_queries: Any) -> Any:
        raise exc

    return call


@pytest.mark.parametrize(
    "outage",
    [
        OperationalError("Network Error: Cannot connect to host 127.0.0.1:1 [Connection refused]"),
        OperationalError("HTTP driver received HTTP status 503"),
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=["network-error", "503-after-retries", "refused", "reset"],
)
async def test_an_unreachable_store_is_503_service_unavailable(outage: Exception) -> None:
    with pytest.raises(ServiceUnavailable) as raised:
        await monitoring()._ask(failing(outage))
    assert raised.value.status == 503 and raised.value.code == "SERVICE_UNAVAILABLE"
    assert raised.value.__cause__ is outage


async def test_a_store_unreachable_at_first_use_is_503() -> None:
    """The client is made on first use; a refused connection then is the same outage."""
    down = monitoring(OperationalError("Network Error"))
    with pytest.raises(ServiceUnavailable):
        await down._ask(failing(AssertionError("never called")))


@pytest.mark.parametrize(
    "failure",
    [
        DatabaseError("Received ClickHouse exception, code: 60 (UNKNOWN_TABLE)", code=60),
        KeyError("latency_avg"),
        TypeError("unsupported operand"),
    ],
    ids=["query-refused", "key-error", "type-error"],
)
async def test_other_failures_are_not_called_an_outage(failure: Exception) -> None:
    """Before, every exception became 503 "unavailable" with no traceback anywhere."""
    with pytest.raises(type(failure)) as raised:
        await monitoring()._ask(failing(failure))
    assert raised.value is failure


async def test_a_refused_query_is_500_with_a_request_id_and_its_traceback_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = monitoring()
    refused = DatabaseError("Received ClickHouse exception, code: 47 (UNKNOWN_IDENTIFIER)")

    async def handler(request: web.Request) -> web.StreamResponse:
        return await store._ask(failing(refused))

    request = make_mocked_request(
        "GET", "/api/monitoring/apis/x/stats", headers={"X-Request-Id": "req-42"}
    )
    with caplog.at_level(logging.ERROR, logger="management_api.http"):
        response = await error_middleware(request, handler)
    assert isinstance(response, web.Response) and response.body is not None
    assert response.status == 500
    body = bytes(response.body).decode()  # type: ignore[arg-type]
    assert '"code":"INTERNAL_ERROR"' in body and '"request_id":"req-42"' in body
    assert "UNKNOWN_IDENTIFIER" not in body
    [record] = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[1] is refused
