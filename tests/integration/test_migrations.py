"""ClickHouse migrations on a real server: apply on an empty database, re-apply as a no-op, and
the materialized views fill the rollups on insert."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from infra.clickhouse import create_async_client
from infra.migrate import apply_migrations
from metrics_consumer.decoding import EVENT_COLUMNS
from tests.integration.metrics_support import event_values, make_events, store_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EXPECTED = {
    "request_events",
    "request_stats_1m",
    "request_stats_1h",
    "request_stats_1m_mv",
    "request_stats_1h_mv",
    "request_stats_1d",
    "request_stats_1d_mv",
    "worker_samples",
    "requests",
    "api_hourly",
    "schema_migrations",
}


async def tables(client, database: str) -> dict[str, str]:
    result = await client.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    )
    return {row[0]: row[1] for row in result.result_rows}


async def test_migrations_apply_on_an_empty_database_and_reapply_as_a_no_op(
    clickhouse_server: str,
) -> None:
    database = f"mig_{datetime.now(UTC).strftime('%H%M%S%f')}"
    client = await create_async_client(clickhouse_server)
    try:
        applied = await apply_migrations(client, database, params={"raw_ttl_days": "7"})
        assert [name[:4] for name in applied] == [
            "0001",
            "0002",
            "0003",
            "0004",
            "0005",
            "0006",
            "0007",
            "0008",
            "0009",
        ]
        first = await tables(client, database)
        assert EXPECTED <= set(first)
        assert first["request_stats_1m"] == "AggregatingMergeTree"
        assert first["requests"] == "View" and first["request_stats_1m_mv"] == "MaterializedView"
        ddl = await client.command(f"SHOW CREATE TABLE {database}.request_events")
        assert "toIntervalDay(7)" in str(ddl) and "bloom_filter" in str(ddl)
        rollup = await client.command(f"SHOW CREATE TABLE {database}.request_stats_1m")
        assert "index_granularity = 256" in str(rollup)

        assert await apply_migrations(client, database, params={"raw_ttl_days": "7"}) == []
        assert await tables(client, database) == first
        runs = await client.query(f"SELECT count() FROM {database}.schema_migrations")
        assert runs.result_rows[0][0] == len(applied)
    finally:
        await client.command(f"DROP DATABASE IF EXISTS {database}")
        await client.close()


async def test_materialized_views_fill_every_rollup_on_insert(
    clickhouse_server: str, ch_database: str
) -> None:
    client = await create_async_client(clickhouse_server)
    try:
        await apply_migrations(client, ch_database, params={"raw_ttl_days": "30"})
        now = datetime.now(UTC)
        events = make_events(3_000, ["r1", "r2"], start=now - timedelta(hours=3), span_s=7200)
        await store_events(client, ch_database, events)
        for table in ("request_stats_1m", "request_stats_1h", "request_stats_1d"):
            result = await client.query(
                f"SELECT api_id, sum(requests), sum(successes) + sum(errors_4xx) + "
                f"sum(errors_5xx), sum(rows) FROM {ch_database}.{table} GROUP BY api_id "
                "ORDER BY api_id"
            )
            assert [tuple(r) for r in result.result_rows] == [
                ("r1", 1500, 1500, 1500),
                ("r2", 1500, 1500, 1500),
            ], table
        hourly = await client.query(
            f"SELECT sum(requests), count() FROM {ch_database}.api_hourly WHERE api_id = 'r1'"
        )
        total, hours = hourly.result_rows[0]
        assert total == 1500 and 2 <= hours <= 3
    finally:
        await client.close()


async def test_later_migrations_keep_rollup_rows_of_events_inserted_before_them(
    clickhouse_server: str, ch_database: str, tmp_path
) -> None:
    """Upgrading a database with data: the daily rollup is backfilled, the re-created rollups keep
    their rows, and events inserted afterwards are counted once in every rollup."""
    import shutil

    from infra.migrate import MIGRATIONS_DIR

    first_only = tmp_path / "migrations"
    first_only.mkdir()
    shutil.copy(MIGRATIONS_DIR / "0001_metrics_schema.sql", first_only)
    client = await create_async_client(clickhouse_server)
    try:
        params = {"raw_ttl_days": "30"}
        await apply_migrations(client, ch_database, params=params, directory=first_only)
        now = datetime.now(UTC)
        before = make_events(2_000, ["u1"], start=now - timedelta(days=2), span_s=86_400)
        # As the consumer of 0001's time wrote them: without the columns later migrations add.
        later = ("authenticated", "shadow", "shadow_of", "trace_id")
        columns = [c for c in EVENT_COLUMNS if c not in later]
        block = [event_values(e, columns) for e in before]
        await client.insert("request_events", block, database=ch_database, column_names=columns)
        # Migrations run before the services start; 0002's backfill takes rows inserted before
        # the second its view was created (system.tables keeps whole seconds).
        await asyncio.sleep(1.1)
        assert await apply_migrations(client, ch_database, params=params) == [
            "0002_daily_rollup.sql",
            "0003_rollup_granularity.sql",
            "0004_latency_of_served_requests.sql",
            "0005_rejected_before_authentication.sql",
            "0006_shadow_events.sql",
            "0007_api_changes.sql",
            "0008_trace_ids.sql",
            "0009_feedback.sql",
        ]
        after = make_events(500, ["u1"], start=now - timedelta(hours=1), span_s=600, seed=99)
        await store_events(client, ch_database, after)
        for table in ("request_stats_1m", "request_stats_1h", "request_stats_1d"):
            result = await client.query(f"SELECT sum(requests) FROM {ch_database}.{table}")
            assert result.result_rows[0][0] == 2_500, table
            # 0005 recomputed the buckets its raw events still cover (all of them here) with the
            # latency of served requests only, as rows written after 0004 have it.
            served = sum(1 for e in [*before, *after] if not 400 <= e.status_code < 500)
            result = await client.query(f"SELECT sum(latency_count) FROM {ch_database}.{table}")
            assert result.result_rows[0][0] == served, table
    finally:
        await client.close()


async def test_shadow_answers_are_stored_but_left_out_of_every_rollup(
    clickhouse_server: str, ch_database: str
) -> None:
    """A shadow answer (migration 0006) is a row of its own, linked to the request it mirrored,
    and no rollup counts it: an API's figures stay those of what its clients got."""
    from msgspec.structs import replace

    client = await create_async_client(clickhouse_server)
    try:
        await apply_migrations(client, ch_database, params={"raw_ttl_days": "30"})
        served = make_events(50, ["api"], seed=11)
        shadows = [
            replace(e, event_id=f"{e.event_id}-s", shadow=True, shadow_of=e.event_id, total_ms=9e3)
            for e in served
        ]
        await store_events(client, ch_database, [*served, *shadows])
        for table in ("request_stats_1m", "request_stats_1h", "request_stats_1d"):
            result = await client.query(
                f"SELECT sum(requests), max(latency_max_ms) FROM {ch_database}.{table}"
            )
            requests, slowest = result.result_rows[0]
            assert requests == 50, table
            assert slowest < 9e3, table
        result = await client.query(
            f"SELECT count(), countIf(s.prediction = p.prediction) "
            f"FROM {ch_database}.requests AS s INNER JOIN {ch_database}.requests AS p "
            f"ON s.shadow_of = p.event_id WHERE s.shadow"
        )
        assert result.result_rows[0] == (50, 50)
    finally:
        await client.close()
