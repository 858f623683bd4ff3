"""The monitoring query module against a real ClickHouse: rollup percentiles, filled series,
history pages, summaries and resources, computed from rows inserted as the consumer inserts them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from management_api.queries import MonitoringQueries
from metrics_consumer.decoding import sample_columns
from metrics_consumer.store import EventStore
from schemas.messages import WorkerSample
from tests.integration.metrics_support import make_events, store_events

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
async def client(clickhouse_server: str, ch_database: str) -> AsyncIterator[object]:
    await migrate_database(clickhouse_server, ch_database)
    client = await create_async_client(clickhouse_server)
    yield client
    await client.close()


async def exact_quantiles(client, database: str, api_id: str, since: datetime) -> list[float]:
    result = await client.query(
        f"SELECT quantilesExact(0.5, 0.95, 0.99)(total_ms) FROM {database}.request_events "
        "WHERE api_id = {api:String} AND ts >= {since:DateTime64(3, 'UTC')} "
        "AND NOT (status_code >= 400 AND status_code < 500)",
        parameters={"api": api_id, "since": since.replace(tzinfo=None)},
    )
    return [float(x) for x in result.result_rows[0][0]]


def within(value: float, exact: float, tolerance: float = 0.02) -> bool:
    return abs(value - exact) <= tolerance * exact


async def test_rollup_percentiles_agree_with_exact_quantiles_within_2_percent(
    client, ch_database: str
) -> None:
    now = datetime.now(UTC)
    day = make_events(150_000, ["lat"], start=now - timedelta(hours=23), span_s=22 * 3600, seed=3)
    week = make_events(150_000, ["lat7"], start=now - timedelta(days=6), span_s=5 * 86_400, seed=4)
    await store_events(client, ch_database, day + week)
    queries = MonitoringQueries(client, ch_database)

    stats = await queries.api_stats("lat", "24h")  # merges ~1,320 per-minute TDigest states
    exact = await exact_quantiles(client, ch_database, "lat", now - timedelta(days=1))
    assert stats.requests_in_range == len(day)
    for name, value, truth in zip(
        ("p50", "p95", "p99"), (stats.p50_ms, stats.p95_ms, stats.p99_ms), exact, strict=True
    ):
        assert within(value, truth), f"{name}: rollup {value:.3f} vs exact {truth:.3f}"

    stats7 = await queries.api_stats("lat7", "7d")  # merges ~120 hourly states
    exact7 = await exact_quantiles(client, ch_database, "lat7", now - timedelta(days=7))
    assert stats7.requests_in_range == len(week)
    for value, truth in zip((stats7.p50_ms, stats7.p95_ms, stats7.p99_ms), exact7, strict=True):
        assert within(value, truth), f"7d rollup {value:.3f} vs exact {truth:.3f}"
    served = [e for e in week if not 400 <= e.status_code < 500]
    assert sum(b.count for b in stats7.histogram) == len(served)
    assert stats7.histogram[-1].le_ms is None


async def test_fast_client_errors_do_not_pull_the_latency_figures_down(
    client, ch_database: str
) -> None:
    """429s and 400s answered in 0.1 ms count as requests and errors, not in the latency."""
    now = datetime.now(UTC)
    events = make_events(3_000, ["mixed"], start=now - timedelta(hours=2), span_s=3_600, seed=9)
    for i, event in enumerate(events):
        if i % 3:
            event.status_code, event.total_ms = (429 if i % 2 else 400), 0.1
        else:
            event.status_code, event.total_ms = 200, 10.0 + (i % 7)
    await store_events(client, ch_database, events)
    queries = MonitoringQueries(client, ch_database)
    stats = await queries.api_stats("mixed", "24h")
    assert stats.requests_in_range == 3_000
    assert stats.errors_4xx == 2_000
    assert 10.0 <= stats.p50_ms <= 16.0 and 10.0 <= stats.avg_ms <= 16.0
    assert sum(b.count for b in stats.histogram) == 1_000
    summary = (await queries.summaries(["mixed"]))["mixed"]
    assert summary.total_requests == 3_000 and 10.0 <= summary.avg_ms <= 16.0
    series = await queries.time_series("mixed", "24h", "hour")
    assert sum(p.requests for p in series.points) == 3_000
    assert all(p.avg_ms == 0.0 or p.avg_ms >= 10.0 for p in series.points)


async def test_time_series_has_every_bucket_of_the_range_with_zeros_where_idle(
    client, ch_database: str
) -> None:
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    # 300 events in the minute 10 minutes ago, 200 in the minute 3 hours ago, nothing else.
    events = make_events(300, ["ts"], start=minute - timedelta(minutes=10), span_s=30, seed=8)
    events += make_events(200, ["ts"], start=minute - timedelta(hours=3), span_s=30, seed=9)
    await store_events(client, ch_database, events)
    queries = MonitoringQueries(client, ch_database)

    series = await queries.time_series("ts", "24h", "minute")
    assert len(series.points) == 1440
    stamps = [p.ts for p in series.points]
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(stamps))
    assert stamps[-1] == minute
    by_ts = {p.ts: p for p in series.points}
    assert by_ts[minute - timedelta(minutes=10)].requests == 300
    assert by_ts[minute - timedelta(hours=3)].requests == 200
    busy = [p for p in series.points if p.requests]
    assert len(busy) == 2
    idle = [p for p in series.points if not p.requests]
    assert all(p.avg_ms == 0 and p.p95_ms == 0 and p.errors_5xx == 0 for p in idle)
    assert by_ts[minute - timedelta(minutes=10)].p95_ms > 0

    hourly = await queries.time_series("ts", "24h", "hour")
    assert len(hourly.points) == 24 and sum(p.requests for p in hourly.points) == 500
    daily = await queries.time_series("ts", "7d", "day")
    assert len(daily.points) == 7 and sum(p.requests for p in daily.points) == 500
    assert daily.points[-1].ts == minute.replace(hour=0, minute=0)
    empty = await queries.time_series("never-called", "24h", "hour")
    assert len(empty.points) == 24 and all(p.requests == 0 for p in empty.points)


async def test_summaries_history_slowest_and_resources(client, ch_database: str) -> None:
    now = datetime.now(UTC)
    events = make_events(5_000, ["s1", "s2"], start=now - timedelta(hours=2), span_s=3600)
    old = make_events(1_000, ["s1"], start=now - timedelta(days=3), span_s=600, seed=21)
    # Either side of the 24 h and 7 d window starts (minutes away, inside partial hours).
    day_in = make_events(10, ["edge"], start=now - timedelta(days=1, minutes=-3), span_s=1)
    day_out = make_events(20, ["edge"], start=now - timedelta(days=1, minutes=3), span_s=1)
    week_out = make_events(40, ["edge"], start=now - timedelta(days=7, minutes=3), span_s=1)
    await store_events(client, ch_database, events + old + day_in + day_out + week_out)
    await EventStore(client, ch_database).insert_samples(
        sample_columns(
            [
                WorkerSample(
                    worker_id="w1",
                    cpu_percent=40,
                    rss_mb=300,
                    loaded_models=["m-1"],
                    model_memory_mb={"m-1": 12.5},
                    ts=now - timedelta(seconds=30),
                ),
                WorkerSample(
                    worker_id="w1",
                    cpu_percent=90,
                    rss_mb=420,
                    loaded_models=["m-1"],
                    model_memory_mb={"m-1": 20.0},
                    ts=now - timedelta(minutes=20),
                ),
                WorkerSample(
                    worker_id="w2",
                    cpu_percent=5,
                    rss_mb=100,
                    loaded_models=["other"],
                    ts=now - timedelta(seconds=30),
                ),
            ]
        )
    )
    queries = MonitoringQueries(client, ch_database)

    summaries = await queries.summaries(["s1", "s2", "unknown"])
    s1 = [e for e in events if e.api_id == "s1"]
    assert summaries["s1"].total_requests == len(s1) + len(old)
    assert summaries["s1"].requests_24h == len(s1)
    assert summaries["s1"].requests_7d == len(s1) + len(old)
    ok = sum(1 for e in s1 + old if e.status_code < 400)
    assert summaries["s1"].success_rate == pytest.approx(ok / (len(s1) + len(old)))
    assert summaries["s1"].last_request_at is not None
    assert abs(summaries["s1"].last_request_at - max(e.ts for e in s1)) < timedelta(seconds=1)
    assert summaries["unknown"].total_requests == 0 and summaries["unknown"].p95_ms == 0
    edge = (await queries.summaries(["edge"]))["edge"]
    assert (edge.requests_24h, edge.requests_7d, edge.total_requests) == (10, 30, 70)

    overview = await queries.overview(["s1", "s2"], active_apis=1)
    assert overview.total_requests == len(events) + len(old)
    assert overview.total_apis == 2 and overview.active_apis == 1

    page = await queries.request_history("s1", page=2, page_size=25, status="5xx")
    fives = sorted((e for e in s1 + old if e.status_code >= 500), key=lambda e: e.ts, reverse=True)
    assert page.total == len(fives)
    assert [r.event_id for r in page.items] == [e.event_id for e in fives[25:50]]
    assert all(r.status_code >= 500 for r in page.items)

    slowest = await queries.slowest_requests("s1", "24h", 5)
    assert [r.total_ms for r in slowest] == pytest.approx(
        sorted((e.total_ms for e in s1), reverse=True)[:5], rel=1e-6
    )

    resources = await queries.resources("s1", "24h", ["m-1"])
    assert len(resources.cpu) == 1440 and len(resources.memory) == 1440
    assert [w.worker_id for w in resources.workers] == ["w1"]
    assert resources.workers[0].rss_mb == 300 and resources.workers[0].cpu_percent == 40
    # Memory is the model's (per-model samples), not the worker's RSS (issue 12).
    assert resources.memory_mb == 12.5 and resources.peak_memory_mb == 20.0
    assert resources.peak_cpu_percent > 0
    stats = await queries.api_stats("s1", "24h", ["m-1"])  # the same figures without the series
    assert (stats.cpu_percent, stats.peak_cpu_percent) == pytest.approx(
        (resources.cpu_percent, resources.peak_cpu_percent), rel=1e-3
    )
    assert (stats.memory_mb, stats.peak_memory_mb) == (12.5, 20.0)
    assert len(stats.slowest) == 10 and stats.requests_in_range == len(s1)
