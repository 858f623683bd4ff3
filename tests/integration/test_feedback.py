"""Ground-truth feedback (issue 15) on the real broker and ClickHouse: ingress's feedback route,
the metrics consumer storing each report once, live accuracy / F1 and MAE / RMSE per version
from the management API's performance route, and the ``accuracy_drop`` alert."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiohttp
import msgspec
import pytest
from sklearn.metrics import f1_score

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from infra.topology import FEEDBACK_KEY
from management_api.db import Model, ModelVersion, session_factory
from management_api.keys import ENGINE
from management_api.performance import VersionInfo, measure
from management_api.queries import MonitoringQueries
from metrics_consumer.decoding import FEEDBACK_COLUMNS, decode_feedback
from metrics_consumer.settings import ConsumerSettings
from metrics_consumer.worker import Worker
from schemas import Task
from schemas.messages import Feedback, FeedbackBatch, encode
from tests.integration.metrics_support import make_events, store_events
from tests.management_support import Api, MakeApi
from tests.prediction_fixtures import HOUSE_ROW, IRIS_ROW, PredictionWorld

pytestmark = pytest.mark.integration

Consumer = Callable[[], Awaitable[Worker]]

IRIS_ROWS = [
    {**IRIS_ROW, "petal_length": 1.0 + 0.6 * i, "petal_width": 0.1 + 0.25 * i} for i in range(10)
]


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def migrated(clickhouse_server: str, ch_database: str) -> str:
    await migrate_database(clickhouse_server, ch_database)
    return ch_database


@pytest.fixture
async def start_consumer(
    namespace: str, rabbitmq_url: str, clickhouse_server: str, migrated: str
) -> AsyncIterator[Consumer]:
    """Metrics consumers in this process (each stopped gracefully afterwards)."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start() -> Worker:
        settings = ConsumerSettings(
            namespace=namespace,
            rabbitmq_url=rabbitmq_url,
            clickhouse_url=clickhouse_server,
            clickhouse_database=migrated,
            consumer_metrics_port=0,
            consumer_flush_interval_s=0.05,
            consumer_peer_check_s=0.2,
        )
        worker = Worker(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        running.append((stop, task))
        await wait_until(lambda: _consuming(worker, task), "the consumer to consume")
        return worker

    yield start
    for stop, task in running:
        stop.set()
        with suppress(Exception):
            await asyncio.wait_for(task, 30)


async def _consuming(worker: Worker, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # a consumer that died says why
    return worker._consuming


async def stored_feedback(url: str, database: str) -> list[tuple[str, str, str]]:
    client = await create_async_client(url)
    try:
        result = await client.query(
            f"SELECT feedback_id, request_id, actual FROM {database}.feedback ORDER BY received_at"
        )
        return [tuple(row) for row in result.result_rows]
    finally:
        await client.close()


async def post(
    http: aiohttp.ClientSession, url: str, key: str | None, body: Any = None, data: Any = None
) -> tuple[int, Any]:
    headers = {"X-API-Key": key} if key else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with http.post(url, json=body, data=data, headers=headers) as response:
        return response.status, await response.json()


async def test_feedback_gives_exact_live_accuracy_and_errors_and_bad_bodies_store_nothing(
    world: PredictionWorld,
    start_ingress: Any,
    start_worker: Any,
    start_consumer: Consumer,
    clickhouse_server: str,
    migrated: str,
) -> None:
    await start_worker()
    await start_consumer()
    ingress = await start_ingress()
    iris_key, house_key = world.keys["iris"], world.keys["house"]
    predict = f"{ingress.url}/api/predict"
    async with aiohttp.ClientSession() as http:
        answers = [await post(http, f"{predict}/iris", iris_key, row) for row in IRIS_ROWS]
        assert all(status == 200 for status, _ in answers), answers
        ids = [body["request_id"] for _, body in answers]
        predicted = [body["prediction"] for _, body in answers]
        # The truth: right for 7 requests, another class for 3 (one corrected later).
        classes = ["setosa", "versicolor", "virginica"]
        truth = list(predicted)
        for n in (1, 4, 8):
            truth[n] = next(c for c in classes if c != predicted[n])
        status, body = await post(
            http, f"{predict}/iris/feedback", iris_key, {"request_id": ids[0], "actual": truth[0]}
        )
        assert (status, body) == (202, {"accepted": 1})
        # A first report says request 2 was wrong; the later one (the truth) wins.
        wrong = next(c for c in classes if c != truth[2])
        status, body = await post(
            http, f"{predict}/iris/feedback", iris_key, {"request_id": ids[2], "actual": wrong}
        )
        assert (status, body) == (202, {"accepted": 1}), body
        items = [{"request_id": i, "actual": t} for i, t in zip(ids[1:], truth[1:], strict=True)]
        status, body = await post(http, f"{predict}/iris/feedback", iris_key, {"items": items})
        assert (status, body) == (202, {"accepted": 9}), body

        # Bad bodies: clear JSON errors, nothing stored.
        feedback = f"{predict}/iris/feedback"
        bad = [
            (await post(http, feedback, iris_key, data=b"{not json"), 400, "INVALID_JSON"),
            (
                await post(
                    http,
                    feedback,
                    iris_key,
                    {"items": [{"request_id": ids[0], "actual": "setosa"}] * 1001},
                ),
                400,
                "INVALID_INPUT",
            ),
            (await post(http, feedback, iris_key, {"actual": "setosa"}), 400, "INVALID_INPUT"),
            (
                await post(http, feedback, iris_key, {"request_id": "abc", "actual": "setosa"}),
                400,
                "INVALID_INPUT",
            ),
            (
                await post(
                    http,
                    feedback,
                    iris_key,
                    {"items": [{"request_id": ids[0], "actual": "x"}, {"request_id": ids[1]}]},
                ),
                400,
                "INVALID_INPUT",
            ),
            (
                await post(http, feedback, house_key, {"request_id": ids[0], "actual": "x"}),
                403,
                "INVALID_API_KEY",
            ),
            (
                await post(http, f"{predict}/house/feedback", house_key, {"request_id": ids[0]}),
                400,
                "INVALID_INPUT",
            ),
            (
                await post(
                    http,
                    f"{predict}/house/feedback",
                    house_key,
                    {"request_id": ids[0], "actual": "cheap"},
                ),
                400,
                "INVALID_INPUT",
            ),
            (await post(http, feedback, None, {"request_id": ids[0], "actual": "x"}), 401, None),
        ]
        for (status, body), want_status, want_code in bad:
            assert status == want_status, body
            assert set(body) == {"error"} and body["error"]["message"], body
            if want_code is not None:
                assert body["error"]["code"] == want_code, body
        assert "1000" in bad[1][0][1]["error"]["message"]
        assert bad[4][0][1]["error"]["details"]["item"] == "items.1"

        # A browser may call it cross-origin (the preflight of /api/predict/*).
        async with http.options(
            feedback,
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-API-Key, Content-Type",
            },
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"

        # A regressor: known errors.
        house_rows = [{**HOUSE_ROW, "size": 60.0 + 30 * i} for i in range(4)]
        answers = [await post(http, f"{predict}/house", house_key, row) for row in house_rows]
        assert all(status == 200 for status, _ in answers), answers
        house_ids = [body["request_id"] for _, body in answers]
        errors = [1.0, -2.0, 3.0, 0.0]
        items = [
            {"request_id": i, "actual": body["prediction"] + e}
            for i, (_, body), e in zip(house_ids, answers, errors, strict=True)
        ]
        status, body = await post(http, f"{predict}/house/feedback", house_key, {"items": items})
        assert (status, body) == (202, {"accepted": 4}), body

    accepted = 1 + 1 + 9 + 4
    rows = await wait_until(
        lambda: _count_at_least(clickhouse_server, migrated, accepted), "feedback stored"
    )
    assert len(rows) == accepted and len({r[0] for r in rows}) == accepted

    client = await create_async_client(clickhouse_server)
    try:
        queries = MonitoringQueries(client, migrated)

        async def events_stored() -> bool:
            result = await client.query(f"SELECT count() FROM {migrated}.request_events")
            return int(result.result_rows[0][0]) >= len(IRIS_ROWS) + len(house_rows)

        await wait_until(events_stored, "request events stored")
        iris_metrics = {"accuracy": 0.97, "f1": 0.96}
        performance = await measure(
            queries,
            "iris",
            Task.CLASSIFICATION,
            "1h",
            {"iris-v1": VersionInfo(1, iris_metrics, classes)},
        )
        assert performance.task == "classification"
        assert performance.matched == 10 and performance.unmatched == 0
        [version] = performance.versions
        assert version.version == 1 and version.n == 10
        assert version.accuracy == 7 / 10
        expected_f1 = f1_score(truth, predicted, average="macro")
        assert version.f1 is not None and abs(version.f1 - expected_f1) < 1e-12
        assert version.test_metrics == iris_metrics
        assert sum(p.n for p in performance.series) == 10
        assert all(p.version == 1 for p in performance.series)

        house = await measure(
            queries, "house", Task.REGRESSION, "1h", {"house-v1": VersionInfo(1, {"rmse": 9.0})}
        )
        [version] = house.versions
        assert version.n == 4 and version.accuracy is None
        assert version.mae is not None and abs(version.mae - 1.5) < 1e-9
        assert version.rmse is not None and abs(version.rmse - math.sqrt(14 / 4)) < 1e-9
    finally:
        await client.close()


async def _count_at_least(url: str, database: str, n: int) -> list[tuple[str, str, str]] | None:
    rows = await stored_feedback(url, database)
    if len(rows) < n:
        return None
    await asyncio.sleep(0.5)  # a little longer, to catch doubles
    return await stored_feedback(url, database)


async def test_redelivered_feedback_is_stored_once_by_another_consumer(
    amqp: Any, topology: Any, start_consumer: Consumer, clickhouse_server: str, migrated: str
) -> None:
    first = await start_consumer()
    client = await create_async_client(clickhouse_server)
    try:
        described = await client.query(f"DESCRIBE TABLE {migrated}.feedback")
        columns = {row["name"]: row["type"] for row in described.named_results()}
    finally:
        await client.close()
    # The consumer's columns derive from the one definition and exist in the live table.
    assert set(FEEDBACK_COLUMNS) <= set(columns), columns
    assert columns["received_at"] == "DateTime64(3, 'UTC')"
    channel = await amqp.channel(publisher_confirms=True)
    events = await channel.get_exchange(topology.names.events_exchange)

    def batch(*actuals: str) -> FeedbackBatch:
        now = datetime.now(UTC)
        return FeedbackBatch(
            batch_id=uuid.uuid4().hex,
            items=[
                Feedback(
                    feedback_id=uuid.uuid4().hex,
                    request_id=uuid.uuid4().hex,
                    api_id="a",
                    actual=actual,
                    received_at=now,
                )
                for actual in actuals
            ],
        )

    async def send(message: FeedbackBatch) -> None:
        await events.publish(
            aio_pika.Message(encode(message), message_id=message.batch_id),
            routing_key=FEEDBACK_KEY,
        )

    original = batch("x", "y", "z")
    await send(original)
    await wait_until(lambda: _count_at_least(clickhouse_server, migrated, 3), "first batch")
    # The same batch again, to a consumer that did not store it (a publisher's retry, or a
    # redelivery after the first consumer died before its ack): stored once all the same.
    await start_consumer()
    await send(original)
    await send(batch("w"))
    rows = await wait_until(lambda: _count_at_least(clickhouse_server, migrated, 4), "sentinel")
    assert sorted(r[2] for r in rows) == ["w", "x", "y", "z"]
    assert first.writer is not None
    await channel.close()


async def stored_iris_model(api: Api, owner: dict[str, str]) -> str:
    """A trained iris model as the catalog records it, written straight to the database (the
    route and the alert read only its rows; training one would take seconds)."""
    status, me = await api.call("GET", "/api/users/me", owner)
    assert status == 200, me
    model = Model(owner_id=me["id"], name="iris", task="classification")
    sessions = session_factory(api.client.app[ENGINE])
    async with sessions() as session:
        session.add(model)
        await session.flush()
        session.add(
            ModelVersion(
                id=f"{model.id}-v1",
                model_id=model.id,
                number=1,
                algorithm="logistic_regression",
                params={},
                metrics={"accuracy": 0.95, "f1": 0.94},
                features=[{"name": n, "type": "number"} for n in IRIS_ROW],
                classes=["setosa", "versicolor", "virginica"],
                target="species",
                n_train=120,
                n_test=30,
                source="builtin:iris",
            )
        )
        await session.commit()
        return str(model.id)


async def test_accuracy_drop_fires_and_performance_route_answers_per_version(
    make_api: MakeApi, clickhouse_server: str, clickhouse_db: str
) -> None:
    api = await make_api(management_alert_evaluation_s=0.2)
    owner = await api.new_user("labeller")
    stranger = await api.new_user("nosy")
    model_id = await stored_iris_model(api, owner)
    created = await api.export(owner, model_id, name="labelled")
    api_id = created["api"]["id"]
    version_key = created["api"]["model_version_id"]

    # 20 answered requests, 12 of them right by their feedback: accuracy 0.6.
    now = datetime.now(UTC)
    events = [
        msgspec.structs.replace(
            e, status_code=200, version_key=version_key, prediction="setosa", authenticated=True
        )
        for e in make_events(20, [api_id], start=now - timedelta(seconds=2), span_s=1.0)
    ]
    client = await create_async_client(clickhouse_server)
    try:
        await store_events(client, clickhouse_db, events)
        reports = [
            Feedback(
                feedback_id=uuid.uuid4().hex,
                request_id=e.event_id,
                api_id=api_id,
                actual="setosa" if n < 12 else "virginica",
                received_at=now,
            )
            for n, e in enumerate(events)
        ]
        rows = decode_feedback(encode(FeedbackBatch(batch_id="fb", items=reports)))
        await client.insert(
            "feedback",
            rows.columns,
            database=clickhouse_db,
            column_names=list(FEEDBACK_COLUMNS),
            column_oriented=True,
        )
    finally:
        await client.close()

    status, body = await api.call("GET", f"/api/exports/{api_id}/performance?range=1h", owner)
    assert status == 200, body
    assert body["task"] == "classification" and body["matched"] == 20
    [version] = body["versions"]
    assert version["version"] == 1 and version["n"] == 20 and version["accuracy"] == 0.6
    assert version["test_metrics"] == {"accuracy": 0.95, "f1": 0.94}
    assert (await api.call("GET", f"/api/exports/{api_id}/performance", stranger))[0] == 404
    bad = await api.call("GET", f"/api/exports/{api_id}/performance?range=2y", owner)
    assert bad[0] == 400 and bad[1]["error"]["code"], bad

    rule = {"kind": "accuracy_drop", "threshold": 0.8, "window_s": 300, "min_requests": 10}
    status, rules = await api.call(
        "PUT", f"/api/exports/{api_id}/alert-rules", owner, json={"rules": [rule]}
    )
    assert status == 200, rules
    rule_id = rules["items"][0]["id"]

    async def firing() -> dict[str, Any] | None:
        _, active = await api.call("GET", "/api/alerts/active", owner)
        found = [a for a in active["items"] if a["rule"]["id"] == rule_id]
        return found[0] if found and found[0]["state"] == "firing" else None

    alert = await wait_until(firing, "accuracy_drop firing")
    assert alert["value"] == pytest.approx(0.6)


async def test_feedback_counts_only_for_the_api_whose_key_sent_it_and_bad_batches_store_nothing(
    world: PredictionWorld,
    start_ingress: Any,
    start_worker: Any,
    start_consumer: Consumer,
    clickhouse_server: str,
    migrated: str,
) -> None:
    """An attacker holding API "limited"'s key reports wrong truths for "iris"'s request ids:
    ingress cannot know whose an id is, so it takes them, but as "limited"'s; iris's figures
    count only iris's own reports. A batch reporting one request twice, an over-long label and
    a lying id are 400s that store nothing."""
    await start_worker()
    await start_consumer()
    ingress = await start_ingress()
    iris_key, limited_key = world.keys["iris"], world.keys["limited"]
    predict = f"{ingress.url}/api/predict"
    async with aiohttp.ClientSession() as http:
        answers = [await post(http, f"{predict}/iris", iris_key, row) for row in IRIS_ROWS[:3]]
        assert all(status == 200 for status, _ in answers), answers
        ids = [body["request_id"] for _, body in answers]
        predicted = [body["prediction"] for _, body in answers]
        classes = ["setosa", "versicolor", "virginica"]
        wrong = [next(c for c in classes if c != p) for p in predicted]

        hostile = [{"request_id": i, "actual": w} for i, w in zip(ids, wrong, strict=True)]
        status, body = await post(
            http, f"{predict}/limited/feedback", limited_key, {"items": hostile}
        )
        assert (status, body) == (202, {"accepted": 3}), body
        # The path names iris, the key is limited's: refused.
        status, body = await post(http, f"{predict}/iris/feedback", limited_key, hostile[0])
        assert status == 403 and body["error"]["code"] == "INVALID_API_KEY", body

        feedback = f"{predict}/iris/feedback"
        twice = {"items": [{"request_id": ids[0], "actual": p} for p in classes[:2]]}
        status, body = await post(http, feedback, iris_key, twice)
        assert status == 400 and body["error"]["details"]["first"] == "items.0", body
        status, body = await post(
            http, feedback, iris_key, {"request_id": ids[0], "actual": "s" * 100_000}
        )
        assert status == 400 and "at most 200" in body["error"]["message"], body
        status, body = await post(
            http, feedback, iris_key, {"request_id": ids[0] + "0" * 100_000, "actual": "setosa"}
        )
        assert status == 400 and body["error"]["details"]["request_id"].startswith("expected")

        # iris's own truths: its predictions were right.
        own = [{"request_id": i, "actual": p} for i, p in zip(ids, predicted, strict=True)]
        status, body = await post(http, feedback, iris_key, {"items": own})
        assert (status, body) == (202, {"accepted": 3}), body

    rows = await wait_until(lambda: _count_at_least(clickhouse_server, migrated, 6), "feedback")
    assert len(rows) == 6, rows
    client = await create_async_client(clickhouse_server)
    try:
        queries = MonitoringQueries(client, migrated)

        async def events_stored() -> bool:
            result = await client.query(f"SELECT count() FROM {migrated}.request_events")
            return int(result.result_rows[0][0]) >= 3

        await wait_until(events_stored, "request events stored")
        info = {"iris-v1": VersionInfo(1, {}, classes)}
        iris = await measure(queries, "iris", Task.CLASSIFICATION, "1h", info)
        [version] = iris.versions
        assert (iris.matched, iris.unmatched, version.n, version.accuracy) == (3, 0, 3, 1.0)
        limited = await measure(queries, "limited", Task.CLASSIFICATION, "1h", info)
        assert (limited.matched, limited.unmatched, limited.versions) == (0, 3, [])
    finally:
        await client.close()
