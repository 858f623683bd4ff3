"""Canary and shadow traffic on the real broker, a real predictor and the real metrics pipeline:
a canary answers its share of the requests and its figures are apart (by version, in ClickHouse's
rollups); a shadow answer is stored, linked to the request it mirrored, never returned and never
counted as a request; changing the split under load (canary, shadow, promote, roll back, off)
loses no request."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from ingress.app import METRICS, REGISTRY, SERVICE
from schemas import ApiChangeKind, ApiRecord, TrafficMode, TrafficSplit
from tests.integration.metrics_support import ConsumerProcess, consumer_env, wait_for_count
from tests.prediction_fixtures import IRIS_FEATURES, PredictionWorld, RunningIngress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CONCURRENCY = 50


def iris_rows(n: int, seed: int) -> list[dict[str, float]]:
    """Rows over iris's whole range, so the two versions disagree on some."""
    rng = random.Random(seed)
    return [
        {
            "sepal_length": round(rng.uniform(4.3, 7.9), 2),
            "sepal_width": round(rng.uniform(2.0, 4.4), 2),
            "petal_length": round(rng.uniform(1.0, 6.9), 2),
            "petal_width": round(rng.uniform(0.1, 2.5), 2),
        }
        for _ in range(n)
    ]


def add_second_version(world: PredictionWorld) -> Pipeline:
    """``iris-v2``: a weaker model of the same inputs and classes, in the world's store."""
    frame = pd.DataFrame(
        [[r[n] for n in IRIS_FEATURES] for r in iris_rows(300, seed=1)], columns=IRIS_FEATURES
    )
    labels = world.models["iris"].predict(frame)
    v2 = Pipeline([("model", LogisticRegression(C=0.01, max_iter=500))]).fit(frame, labels)
    world.store.save("iris-v2", v2, {"task": "classification", "features": IRIS_FEATURES})
    world.models["iris-v2"] = v2
    return v2


def predictions(model: Pipeline, rows: list[dict[str, Any]]) -> list[str]:
    """The model's prediction of each row, as the answers and events carry them."""
    frame = pd.DataFrame([[row[n] for n in IRIS_FEATURES] for row in rows], columns=IRIS_FEATURES)
    return [str(label) for label in model.predict(frame)]


def with_traffic(
    world: PredictionWorld, mode: TrafficMode | None, weight: float = 0.0, serving: str = "iris-v1"
) -> ApiRecord:
    """The iris API's record serving ``serving`` with a split to the other version (or none)."""
    other = "iris-v2" if serving == "iris-v1" else "iris-v1"
    traffic = (
        None
        if mode is None
        else TrafficSplit(
            version_key=other,
            version_number=int(other[-1]),
            mode=mode,
            weight_percent=weight,
        )
    )
    return world.records["iris"].model_copy(
        update={"version_key": serving, "version_number": int(serving[-1]), "traffic": traffic}
    )


async def eventually(check: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never saw {what}"
        await asyncio.sleep(0.02)


async def more_answers(answers: list[Any], count: int, timeout: float = 60.0) -> None:
    """Wait until ``count`` answers arrived (the load keeps running meanwhile)."""
    deadline = time.monotonic() + timeout
    while len(answers) < count:
        assert time.monotonic() < deadline, f"only {len(answers)} of {count} answers"
        await asyncio.sleep(0.02)


async def apply(world: PredictionWorld, ingress: RunningIngress, record: ApiRecord) -> None:
    """Publish the record as the management side does and wait until ingress serves it (its
    versions warm: predictors preload them on the change)."""
    registry = ingress.app[REGISTRY]
    await world.change(ApiChangeKind.UPDATED, record, "iris")

    def serves_it() -> bool:
        entry = registry.get("iris")
        return (
            entry is not None
            and entry.version_key == record.version_key
            and entry.traffic == record.traffic
        )

    await eventually(serves_it, f"ingress serving {record.version_key} with {record.traffic}")


async def send_all(
    http: aiohttp.ClientSession, url: str, key: str, rows: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """Every row as one request, ``CONCURRENCY`` at a time; answers in the rows' order."""
    answers: list[tuple[int, dict[str, Any]]] = [(0, {})] * len(rows)
    next_index = iter(range(len(rows)))

    async def client() -> None:
        for i in next_index:
            async with http.post(url, json=rows[i], headers={"X-API-Key": key}) as response:
                answers[i] = (response.status, await response.json())

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return answers


async def stored(url: str, database: str, sql: str) -> list[tuple[Any, ...]]:
    client = await create_async_client(url)
    try:
        return [tuple(row) for row in (await client.query(sql)).result_rows]
    finally:
        await client.close()


async def consumer_running(
    namespace: str, clickhouse_server: str, ch_database: str, tmp_path: Path
) -> ConsumerProcess:
    await migrate_database(clickhouse_server, ch_database)
    consumer = ConsumerProcess(tmp_path, consumer_env(namespace, clickhouse_server, ch_database))
    consumer.start()
    return consumer


async def test_a_10_percent_canary_answers_10_percent_of_2000_requests_and_is_counted_apart(
    world: PredictionWorld,
    start_ingress: Callable[..., Awaitable[RunningIngress]],
    start_worker: Any,
    namespace: str,
    clickhouse_server: str,
    ch_database: str,
    tmp_path: Path,
) -> None:
    v2 = add_second_version(world)
    consumer = await consumer_running(namespace, clickhouse_server, ch_database, tmp_path)
    try:
        await start_worker()
        ingress = await start_ingress()
        await apply(world, ingress, with_traffic(world, TrafficMode.CANARY, 10))
        rows = iris_rows(2000, seed=2)
        async with aiohttp.ClientSession() as http:
            answers = await send_all(
                http, f"{ingress.url}/api/predict/iris", world.keys["iris"], rows
            )
        assert {status for status, _ in answers} == {200}
        versions = Counter(body["model_version"] for _, body in answers)
        assert set(versions) == {"iris-v1", "iris-v2"}
        assert 140 <= versions["iris-v2"] <= 260, versions  # 10 % +- 3 % of 2,000
        # Each answer is its version's own prediction of that request's row.
        expected = {
            "iris-v1": predictions(world.models["iris"], rows),
            "iris-v2": predictions(v2, rows),
        }
        for i, (_, body) in enumerate(answers):
            assert body["prediction"] == expected[body["model_version"]][i], (i, body)
        canary_metric = ingress.app[METRICS].registry.get_sample_value(
            "ingress_canary_requests_total", {"api_id": "iris"}
        )
        assert canary_metric == versions["iris-v2"]

        await wait_for_count(clickhouse_server, ch_database, 2000, timeout=60, what="events")
        events = await stored(
            clickhouse_server,
            ch_database,
            f"SELECT event_id, model_version, shadow FROM {ch_database}.request_events",
        )
        by_id = {body["request_id"]: body["model_version"] for _, body in answers}
        assert {e[0]: e[1] for e in events} == by_id and not any(e[2] for e in events)
        # The monitoring rollups hold each version's requests apart.
        rollup = await stored(
            clickhouse_server,
            ch_database,
            f"SELECT model_version, sum(requests), sum(successes) FROM "
            f"{ch_database}.request_stats_1m WHERE api_id = 'iris' GROUP BY model_version",
        )
        assert {r[0]: (r[1], r[2]) for r in rollup} == {v: (n, n) for v, n in versions.items()}
    finally:
        consumer.stop()


async def test_shadow_answers_are_stored_linked_to_their_request_and_never_returned(
    world: PredictionWorld,
    start_ingress: Callable[..., Awaitable[RunningIngress]],
    start_worker: Any,
    namespace: str,
    clickhouse_server: str,
    ch_database: str,
    tmp_path: Path,
) -> None:
    v2 = add_second_version(world)
    consumer = await consumer_running(namespace, clickhouse_server, ch_database, tmp_path)
    try:
        await start_worker()
        ingress = await start_ingress()
        await apply(world, ingress, with_traffic(world, TrafficMode.SHADOW, 50))
        rows = iris_rows(400, seed=3)
        async with aiohttp.ClientSession() as http:
            answers = await send_all(
                http, f"{ingress.url}/api/predict/iris", world.keys["iris"], rows
            )
        assert {(status, body["model_version"]) for status, body in answers} == {(200, "iris-v1")}
        service = ingress.app[SERVICE]
        await eventually(lambda: service.shadows.inflight == 0, "the shadow calls ending")
        metrics = ingress.app[METRICS].registry

        def shadow_calls(outcome: str) -> float:
            labels = {"api_id": "iris", "outcome": outcome}
            return metrics.get_sample_value("ingress_shadow_calls_total", labels) or 0.0

        sent = int(shadow_calls("sent"))
        assert 140 <= sent <= 260, sent  # 50 % of 400, +- 3 sigma
        assert shadow_calls("dropped") == 0 and shadow_calls("failed") == 0

        await wait_for_count(clickhouse_server, ch_database, 400 + sent, timeout=60, what="events")
        events = await stored(
            clickhouse_server,
            ch_database,
            "SELECT event_id, model_version, shadow, shadow_of, status_code, prediction, input "
            f"FROM {ch_database}.request_events",
        )
        primaries = {e[0]: e for e in events if not e[2]}
        shadows = [e for e in events if e[2]]
        assert set(primaries) == {body["request_id"] for _, body in answers}
        assert {e[1] for e in primaries.values()} == {"iris-v1"}
        assert len(shadows) == sent
        assert len({e[3] for e in shadows}) == sent  # one shadow per mirrored request
        for event_id, version, _, shadow_of, status, _, body in shadows:
            assert event_id not in primaries and (version, status) == ("iris-v2", 200)
            assert body == primaries[shadow_of][6]  # the request it mirrored
        mirrored = [orjson.loads(e[6]) for e in shadows]
        assert [e[5] for e in shadows] == predictions(v2, mirrored)
        assert [primaries[e[3]][5] for e in shadows] == predictions(world.models["iris"], mirrored)
        agree = sum(e[5] == primaries[e[3]][5] for e in shadows)
        assert 0 < agree < sent  # the two models disagree on some rows: a real comparison
        # An API's figures are what its clients got: the rollups leave the shadows out.
        rollup = await stored(
            clickhouse_server,
            ch_database,
            f"SELECT model_version, sum(requests) FROM {ch_database}.request_stats_1m "
            "WHERE api_id = 'iris' GROUP BY model_version",
        )
        assert dict(rollup) == {"iris-v1": 400}
        client_metric = metrics.get_sample_value(
            "ingress_requests_total", {"api_id": "iris", "version": "1", "status": "200"}
        )
        assert client_metric == 400
    finally:
        consumer.stop()


async def test_changing_the_split_under_load_loses_no_request(
    world: PredictionWorld,
    start_ingress: Callable[..., Awaitable[RunningIngress]],
    start_worker: Any,
) -> None:
    """Canary, off, shadow, promote, canary back to v1, roll back, off: each applied while 50
    clients keep asking; every request is answered 200 by a version the API served then."""
    add_second_version(world)
    await start_worker()
    # What is shown here is the split changing, not load shedding: on a busy machine 50 clients
    # plus a 50 % shadow can wait past the shedding target, and a shed 503 is not a lost request.
    ingress = await start_ingress(ingress_max_queue_delay_ms=0)
    registry = ingress.app[REGISTRY]
    url, key = f"{ingress.url}/api/predict/iris", world.keys["iris"]
    answers: list[tuple[int, str]] = []
    stop = asyncio.Event()
    rows = iris_rows(500, seed=4)

    async def client(http: aiohttp.ClientSession, n: int) -> None:
        i = n
        while not stop.is_set():
            async with http.post(url, json=rows[i % len(rows)], headers={"X-API-Key": key}) as r:
                body = await r.json()
                answers.append((r.status, body.get("model_version", body.get("error", {}))))
            i += CONCURRENCY

    steps = [
        with_traffic(world, TrafficMode.CANARY, 50),
        with_traffic(world, None),
        with_traffic(world, TrafficMode.SHADOW, 50),
        with_traffic(world, None, serving="iris-v2"),  # promote
        with_traffic(world, TrafficMode.CANARY, 30, serving="iris-v2"),
        with_traffic(world, None),  # roll back
        with_traffic(world, TrafficMode.CANARY, 100),
        with_traffic(world, None),  # off
    ]
    async with aiohttp.ClientSession() as http:
        clients = [asyncio.create_task(client(http, n)) for n in range(CONCURRENCY)]
        try:
            for record in steps:
                before = len(answers)
                await apply(world, ingress, record)
                # Let the load run on this split a while (answers, not time) before the next.
                await more_answers(answers, before + 200)
        finally:
            stop.set()
            await asyncio.gather(*clients)
    assert registry.changes >= len(steps)
    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: len(answers)}, statuses
    versions = Counter(version for _, version in answers)
    assert set(versions) == {"iris-v1", "iris-v2"} and min(versions.values()) >= 200, versions
