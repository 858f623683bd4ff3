"""An analyst with clickhouse-connect as the read-only user reads the views and cannot write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from tests.integration.metrics_support import make_events, store_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_read_only_analyst_queries_views_and_cannot_write(
    clickhouse_server: str, ch_database: str
) -> None:
    await migrate_database(clickhouse_server, ch_database)
    writer = await create_async_client(clickhouse_server)
    events = make_events(1_000, ["an"], start=datetime.now(UTC) - timedelta(hours=1))
    await store_events(writer, ch_database, events)
    await writer.close()

    url = urlparse(clickhouse_server)
    analyst = clickhouse_connect.get_client(
        host=url.hostname,
        port=url.port,
        username="analyst",
        password="analyst",
        database=ch_database,
    )
    try:
        assert analyst.query("SELECT count() FROM requests").result_rows[0][0] == 1_000
        hourly = analyst.query("SELECT sum(requests), max(p99_ms) FROM api_hourly").result_rows
        assert hourly[0][0] == 1_000 and hourly[0][1] > 0
        frame = analyst.query_df("SELECT status_class, count() AS n FROM requests GROUP BY 1")
        assert frame["n"].sum() == 1_000

        with pytest.raises(DatabaseError, match=r"164|READONLY|readonly"):
            analyst.command(f"INSERT INTO {ch_database}.request_events (event_id) VALUES ('x')")
        with pytest.raises(DatabaseError, match=r"164|READONLY|readonly"):
            analyst.command(f"CREATE TABLE {ch_database}.mine (x UInt8) ENGINE = Memory")
        with pytest.raises(DatabaseError):
            analyst.command(f"DROP TABLE {ch_database}.request_events")
        assert analyst.query("SELECT count() FROM requests").result_rows[0][0] == 1_000
    finally:
        analyst.close()
