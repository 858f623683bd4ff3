# ruff: noqa: F811
"""Resource truth (issue 12): an API's memory is the memory of the model versions it serves, from
the predictors' per-model samples (not the worker's RSS, the same for every API), and its CPU is
its share of the predictors' capacity from the events' ``cpu_ms``; both in the API list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from management_api.queries import MonitoringQueries, api_memory_mb, cpu_share
from metrics_consumer.decoding import sample_columns
from metrics_consumer.store import EventStore
from schemas.messages import RequestEvent, WorkerSample
from tests.integration.metrics_support import store_events
from tests.management_support import Api, api, clickhouse_db  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RSS_MB = 290.0
"""Every worker's RSS: what every API showed as its memory before."""


def sample(worker: str, ts: datetime, memory: dict[str, float]) -> WorkerSample:
    return WorkerSample(
        worker_id=worker,
        ts=ts,
        cpu_percent=50.0,
        rss_mb=RSS_MB,
        loaded_models=list(memory),
        model_memory_mb=memory,
    )


def events(api_id: str, version: str, count: int, at: datetime, cpu_ms: float) -> list[Any]:
    """``count`` requests within one second from ``at``, each taking ``cpu_ms`` of CPU."""
    return [
        RequestEvent(
            event_id=f"{api_id}-{i}",
            ts=at + timedelta(milliseconds=i),
            api_id=api_id,
            version_key=version,
            status_code=200,
            total_ms=5.0,
            cpu_ms=cpu_ms,
            worker_id="w1",
            worker_rss_mb=RSS_MB,
        )
        for i in range(count)
    ]


async def insert_samples(client: Any, database: str, samples: list[WorkerSample]) -> None:
    await EventStore(client, database).insert_samples(sample_columns(samples))


@pytest.fixture
async def client(clickhouse_server: str, ch_database: str) -> AsyncIterator[Any]:
    await migrate_database(clickhouse_server, ch_database)
    client = await create_async_client(clickhouse_server)
    yield client
    await client.close()


async def test_memory_is_the_served_models_and_cpu_the_share_of_the_predictors(
    client: Any, ch_database: str
) -> None:
    now = datetime.now(UTC)
    await insert_samples(
        client,
        ch_database,
        [
            # w1 holds both models; its latest sample is the one that counts now.
            sample("w1", now - timedelta(minutes=20), {"va": 40.0, "vb": 30.0}),
            sample("w1", now - timedelta(seconds=20), {"va": 12.0, "vb": 30.0}),
            # w2 holds va only, a little more of it; w3 was seen 2 h ago (capacity, not now).
            sample("w2", now - timedelta(seconds=10), {"va": 14.0}),
            sample("w3", now - timedelta(hours=2), {"vc": 99.0}),
            # A canary version of b, loaded in w1's latest sample too (counted with vb).
            sample("w1", now - timedelta(seconds=5), {"va": 12.0, "vb": 30.0, "vb2": 8.0}),
        ],
    )
    minute = (now - timedelta(minutes=30)).replace(second=5, microsecond=0)
    await store_events(
        client,
        ch_database,
        events("a", "va", 600, minute, cpu_ms=100.0) + events("b", "vb", 60, minute, cpu_ms=50.0),
    )
    queries = MonitoringQueries(client, ch_database)

    a = await queries.resources("a", "24h", ["va"])
    b = await queries.resources("b", "24h", ["vb", "vb2"])
    # Memory: the served versions of each worker's latest sample, the most of any worker.
    assert a.memory_mb == pytest.approx(14.0) and b.memory_mb == pytest.approx(38.0)
    assert a.peak_memory_mb == pytest.approx(40.0) and b.peak_memory_mb == pytest.approx(38.0)
    assert RSS_MB not in (a.memory_mb, b.memory_mb)
    assert [w.worker_id for w in a.workers] == ["w1", "w2"]
    assert [w.worker_id for w in b.workers] == ["w1"]
    assert max(p.value for p in a.memory) == pytest.approx(40.0)

    # CPU: the API's cpu_ms over the range's wall time x the cores (3 workers sampled in it).
    wall_s = 86_400.0
    assert a.cpu_percent == pytest.approx(600 * 100.0 / (wall_s * 1000 * 3) * 100, rel=2e-3)
    assert b.cpu_percent == pytest.approx(60 * 50.0 / (wall_s * 1000 * 3) * 100, rel=2e-3)
    # The peak is the busiest minute's share: 60 s of CPU in one minute over 3 cores.
    assert a.peak_cpu_percent == pytest.approx(100 / 3, rel=1e-4)
    assert max(p.value for p in a.cpu) == pytest.approx(100 / 3, rel=1e-4)

    # The same figures (the wall time moves on between calls: approx) where the alerts read them
    # (ApiStats) and in the API list (usage).
    stats = await queries.api_stats("a", "24h", ["va"])
    assert stats.cpu_percent == pytest.approx(a.cpu_percent, rel=1e-3)
    assert (stats.memory_mb, stats.peak_memory_mb) == (14.0, 40.0)
    assert stats.peak_cpu_percent == a.peak_cpu_percent
    usage = await queries.usage({"a": ["va"], "b": ["vb", "vb2"], "idle": ["vz"]})
    assert usage["a"] == (pytest.approx(a.cpu_percent, rel=1e-3), 14.0)
    assert usage["b"] == (pytest.approx(b.cpu_percent, rel=1e-3), 38.0)
    assert usage["idle"] == (0.0, 0.0)
    # What any window (an alert rule's) computes them from: capacity since its start, memory now.
    predictors = await queries.predictors(now - timedelta(hours=3))
    assert predictors.cores == 3 and len(predictors.held) == 2  # w3 is not seen now
    assert api_memory_mb(predictors.held, ["vb", "vb2"]) == 38.0
    assert (await queries.predictors(now - timedelta(minutes=1))).cores == 2


def test_the_documented_arithmetic() -> None:
    assert cpu_share(30_000, 60, 1) == 50.0  # 30 s of CPU in a minute on one core
    assert cpu_share(30_000, 60, 2) == 25.0
    assert cpu_share(1_000, 60, 0) == cpu_share(1_000, 60, 1)  # no sample: one core
    held = [{"va": 10.0, "vb": 5.0}, {"va": 12.0}]
    assert api_memory_mb(held, ["va"]) == 12.0  # the most of any worker, not the sum
    assert api_memory_mb(held, ["va", "vb", "va"]) == 15.0  # versions summed within a worker
    assert api_memory_mb([], ["va"]) == 0.0


async def test_the_api_list_shows_each_apis_cpu_and_memory(api: Api) -> None:
    owner = await api.new_user("resources")
    iris = await api.train_builtin(owner, "iris")
    wine = await api.train_builtin(owner, "wine", dataset="wine")
    first = (await api.export(owner, iris["model_id"], name="first"))["api"]
    second = (await api.export(owner, wine["model_id"], name="second"))["api"]
    assert first["model_version_id"] != second["model_version_id"]
    now = datetime.now(UTC)
    client = await create_async_client(
        api.settings.clickhouse_url, api.settings.clickhouse_database
    )
    try:
        await insert_samples(
            client,
            api.settings.clickhouse_database,
            [
                sample(
                    "predictor-1",
                    now - timedelta(seconds=5),
                    {first["model_version_id"]: 3.5, second["model_version_id"]: 21.25},
                )
            ],
        )
        await store_events(
            client,
            api.settings.clickhouse_database,
            events(first["id"], first["model_version_id"], 100, now - timedelta(minutes=5), 20),
        )
    finally:
        await client.close()

    for path in ("/api/exports", "/api/monitoring/apis"):
        status, body = await api.call("GET", path, owner)
        assert status == 200, body
        stats = {item["name"]: item["stats"] for item in body["items"]}
        assert stats["first"]["memory_mb"] == pytest.approx(3.5)
        assert stats["second"]["memory_mb"] == pytest.approx(21.25)
        # One worker sampled in the last 24 h: 2 s of CPU over about a day on one core.
        assert stats["first"]["cpu_percent"] == pytest.approx(2_000 / 86_400_000 * 100, rel=2e-3)
        assert stats["second"]["cpu_percent"] == 0.0
    status, detail = await api.call(
        "GET", f"/api/monitoring/apis/{second['id']}/stats?range=24h", owner
    )
    assert status == 200 and detail["memory_mb"] == pytest.approx(21.25)
