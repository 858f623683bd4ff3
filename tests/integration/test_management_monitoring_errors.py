"""Monitoring against a real ClickHouse: a query the server refuses is an error of ours (it reaches
the error middleware as itself, for a 500 with its traceback logged), while a server nobody listens
for is an outage (503 SERVICE_UNAVAILABLE)."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from infra.clickhouse import create_async_client
from management_api.errors import ServiceUnavailable
from management_api.monitoring import Monitoring
from management_api.queries import MonitoringQueries
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def monitoring_of(url: str, database: str) -> Monitoring:
    async def connect() -> MonitoringQueries:
        return MonitoringQueries(await create_async_client(url), database)

    return Monitoring(exports=None, connect=connect, timeout_s=10)  # type: ignore[arg-type]


async def test_a_query_the_server_refuses_is_raised_as_itself_not_as_unavailable(
    clickhouse_server: str, ch_database: str
) -> None:
    """The database exists but has no rollup tables: ClickHouse answers UNKNOWN_TABLE."""
    store = monitoring_of(clickhouse_server, ch_database)
    try:
        with pytest.raises(DatabaseError) as raised:
            await store._ask(lambda q: q.summaries(["api-1"]))
        assert not isinstance(raised.value, OperationalError)
        assert raised.value.code == 60  # UNKNOWN_TABLE
    finally:
        await store.close()


async def test_a_server_nobody_listens_for_is_503() -> None:
    store = monitoring_of(f"http://default:@127.0.0.1:{free_port()}/", "modelgate")
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            await store._ask(lambda q: q.summaries(["api-1"]))
        assert raised.value.status == 503 and raised.value.code == "SERVICE_UNAVAILABLE"
        assert isinstance(raised.value.__cause__, OperationalError)
    finally:
        await store.close()
