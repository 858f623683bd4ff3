"""Requests rejected before authentication (no key, a wrong key) are stored, one event each, but
kept out of the API's requests, error rate, latency and alerts: counted apart (issue 9, item 6).
Real ingress, broker, metrics-consumer, migrations and ClickHouse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import msgspec.inspect
import pytest

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from management_api.monitoring import compute_alerts
from management_api.monitoring_sql import RECORD_COLUMN_OF
from management_api.queries import MonitoringQueries
from metrics_consumer.decoding import EVENT_COLUMNS
from schemas.messages import RequestEvent
from schemas.resources import AlertThresholds
from tests.integration.metrics_support import (
    ConsumerProcess,
    consumer_env,
    wait_for_count,
)
from tests.prediction_fixtures import IRIS_ROW, PredictionWorld

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_keyless_and_wrong_key_requests_leave_the_error_rate_and_alerts_unchanged(
    world: PredictionWorld,
    start_ingress: Any,
    start_worker: Any,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    await migrate_database(clickhouse_server, ch_database)
    consumer = ConsumerProcess(
        tmp_path,
        consumer_env(namespace, clickhouse_server, ch_database, consumer_flush_interval_s=0.2),
    )
    consumer.start()
    await start_worker()
    ingress = await start_ingress()
    url = f"{ingress.url}/api/predict/iris"
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def call(headers: dict[str, str], body: Any = IRIS_ROW) -> None:
                async with http.post(url, json=body, headers=headers) as response:
                    statuses.append(response.status)

            owner = {"X-API-Key": world.keys["iris"]}
            for _ in range(20):
                await call(owner)
            await call(owner, {"sepal_length": "x"})  # the owner's own client error: counts
            for _ in range(30):
                await call({})  # no key
            for _ in range(13):
                await call({"X-API-Key": "mg_not-the-key"})  # a stranger's guess
        assert statuses.count(200) == 20 and statuses.count(400) == 1
        assert statuses.count(401) == 30 and statuses.count(403) == 13
        total, unique = await wait_for_count(
            clickhouse_server, ch_database, len(statuses), timeout=60, what="iris events"
        )
        assert total == unique == len(statuses), consumer.log_tail()
    finally:
        consumer.stop()

    client = await create_async_client(clickhouse_server)
    try:
        stored = await client.query(
            f"SELECT authenticated, count() FROM {ch_database}.request_events "
            "WHERE api_id = 'iris' GROUP BY authenticated ORDER BY authenticated"
        )
        assert [tuple(r) for r in stored.result_rows] == [(False, 43), (True, 21)]
        stats = await MonitoringQueries(client, ch_database).api_stats("iris", "24h")
        series = await MonitoringQueries(client, ch_database).time_series("iris", "24h", "hour")
    finally:
        await client.close()
    assert stats.requests_in_range == 21 and stats.rejected_unauthenticated == 43
    assert stats.errors_4xx == 1 and stats.error_rate == pytest.approx(1 / 21)
    assert sum(p.rejected_unauthenticated for p in series.points) == 43
    assert sum(p.requests for p in series.points) == 21
    # 1/21 = 4.8 % is under the 5 % default: no alert (64 requests with 44 errors would page).
    alerts = compute_alerts(stats, AlertThresholds())
    assert [a.metric for a in alerts if a.metric == "error_rate"] == []


def _clickhouse_type(wire: msgspec.inspect.Type) -> str:
    """The request_events column type a RequestEvent field's type is stored in."""
    inspect = msgspec.inspect
    if isinstance(wire, inspect.UnionType):  # ``bool | None``: None only until built
        (wire,) = [t for t in wire.types if not isinstance(t, inspect.NoneType)]
    if isinstance(wire, inspect.IntType):
        return {65_535: "UInt16", 4_294_967_295: "UInt32"}[wire.le or 0]
    kinds = {
        inspect.StrType: "String",
        inspect.FloatType: "Float32",
        inspect.BoolType: "Bool",
        inspect.DateTimeType: "DateTime64(3, 'UTC')",
    }
    return kinds[type(wire)]


async def test_the_consumer_writes_exactly_the_columns_of_the_live_table(
    clickhouse_server: str, ch_database: str
) -> None:
    """Every column the consumer inserts exists in the migrated table, and every column it leaves
    out has a default (the one list derives from RequestEvent), each field in a column of its
    type; the request-history columns the management API reads exist too."""
    await migrate_database(clickhouse_server, ch_database)
    client = await create_async_client(clickhouse_server)
    try:
        result = await client.query(f"DESCRIBE TABLE {ch_database}.request_events")
        rows = list(result.named_results())
        described = {row["name"]: row["default_type"] for row in rows}
        types = {row["name"]: row["type"] for row in rows}
    finally:
        await client.close()
    assert set(EVENT_COLUMNS) <= set(described)
    assert "authenticated" in EVENT_COLUMNS
    left_out = set(described) - set(EVENT_COLUMNS)
    assert left_out == {"inserted_at"} and described["inserted_at"] == "DEFAULT"
    # Each RequestEvent field is stored in a column of its type (its wire name is the column's).
    for field in msgspec.inspect.type_info(RequestEvent).fields:  # type: ignore[attr-defined]
        column_type = types[field.encode_name]
        if column_type.startswith("LowCardinality("):
            column_type = column_type.removeprefix("LowCardinality(").removesuffix(")")
        assert column_type == _clickhouse_type(field.type), field.name
    # What the management API reads back for request history: every column exists.
    assert set(RECORD_COLUMN_OF.values()) <= set(described)


async def test_migration_0005_takes_earlier_rejections_out_of_the_rollups_it_can_recompute(
    clickhouse_server: str, ch_database: str, tmp_path: Path
) -> None:
    """Rows stored before 0005 (no ``authenticated`` column yet) are judged by their error code:
    the buckets raw events still cover are recomputed, so yesterday's keyless requests leave the
    API's requests and 4xx and are counted as rejected before authentication."""
    import shutil
    from datetime import UTC, datetime, timedelta

    from msgspec.structs import replace

    from infra.migrate import MIGRATIONS_DIR, apply_migrations
    from tests.integration.metrics_support import event_values, make_events, store_events

    before_0005 = tmp_path / "migrations"
    before_0005.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("000[1-4]_*.sql")):
        shutil.copy(path, before_0005)
    client = await create_async_client(clickhouse_server)
    try:
        params = {"raw_ttl_days": "30"}
        await apply_migrations(client, ch_database, params=params, directory=before_0005)
        start = datetime.now(UTC) - timedelta(days=1)
        served = make_events(100, ["old"], start=start, span_s=3_600)
        keyless = [
            replace(e, status_code=401, error_code="MISSING_API_KEY")
            for e in make_events(40, ["old"], start=start, span_s=3_600, seed=3)
        ]
        old_columns = [
            c
            for c in EVENT_COLUMNS
            if c not in ("authenticated", "shadow", "shadow_of", "trace_id")
        ]
        rows = [event_values(e, old_columns) for e in [*served, *keyless]]
        await client.insert("request_events", rows, database=ch_database, column_names=old_columns)
        # 0005 and every migration after it (test_migrations names the later ones).
        later = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql") if p.name >= "0005")
        assert later[0] == "0005_rejected_before_authentication.sql"
        assert await apply_migrations(client, ch_database, params=params) == later
        await store_events(client, ch_database, make_events(10, ["old"], seed=5))
        for table in ("request_stats_1m", "request_stats_1h", "request_stats_1d"):
            result = await client.query(
                f"SELECT sum(requests), sum(errors_4xx), sum(rejected_unauthenticated) "
                f"FROM {ch_database}.{table} WHERE api_id = 'old'"
            )
            requests, e4, rejected = result.result_rows[0]
            expected_4xx = sum(1 for e in served if 400 <= e.status_code < 500)
            assert (requests, rejected) == (110, 40), table
            assert e4 >= expected_4xx and e4 <= expected_4xx + 10, table
    finally:
        await client.close()
