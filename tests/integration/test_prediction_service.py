"""``PredictionService`` (ingress/service.py) tested FastStream-style: ONE test class, run against
an in-memory transport (no socket: connecting one fails the test) and against the real broker.

Both transports carry the batcher's real ``PredictBatch`` bodies to a real predictor ``Worker``,
whose own batch handling and reply code answer them: in memory through a fake channel, on the
broker through ``infra.amqp.RpcClient`` and a consuming worker. So the prediction path (validation,
batching, the predictor, the reply split back to requests, the events) is testable without sockets.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from infra.amqp import RpcClient, connect
from infra.topology import Topology
from ingress.batcher import MicroBatcher
from ingress.events import EventPublisher
from ingress.metrics import IngressMetrics
from ingress.ratelimit import RateLimiter
from ingress.registry import Registry
from ingress.service import PredictionService
from ingress.settings import IngressSettings
from predictor.settings import PredictorSettings
from predictor.worker import Worker
from tests.prediction_fixtures import (
    HOUSE_ROW,
    IRIS_ROW,
    PredictionWorld,
    build_world,
    expected_prediction,
)

TIMEOUT_S = 10.0


class _Reply:
    """What the predictor publishes a reply on, routed back to the batcher in memory."""

    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport

    async def publish(self, message: Any, routing_key: str, **_: Any) -> None:
        self._transport.deliver(message.correlation_id, message.body)


class _Channel:
    def __init__(self, transport: MemoryTransport) -> None:
        self.default_exchange = _Reply(transport)


@dataclass
class _Message:
    """An incoming message as the predictor sees one."""

    body: bytes
    correlation_id: str
    reply_to: str = "memory"
    outcome: str = ""

    async def ack(self) -> None:
        self.outcome = "ack"

    async def reject(self, requeue: bool = False) -> None:
        self.outcome = "reject"

    async def nack(self, requeue: bool = True) -> None:
        self.outcome = "nack"


class MemoryTransport:
    """The batcher's transport (send / expect / forget): each batch goes to an in-process worker."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        worker._rpc_channel = _Channel(self)  # type: ignore[assignment]
        self._waiting: dict[str, Callable[[bytes], None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(
        self, batch_id: str, body: bytes, expiration_s: float, headers: dict[str, str]
    ) -> None:
        message = _Message(body, batch_id)
        task = asyncio.create_task(self._worker._predict_items([(message, time.time())]))  # type: ignore[list-item]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def expect(self, batch_id: str, on_reply: Callable[[bytes], None], on_error: Any) -> None:
        self._waiting[batch_id] = on_reply

    def forget(self, batch_id: str) -> None:
        self._waiting.pop(batch_id, None)

    def deliver(self, correlation_id: str, body: bytes) -> None:
        callback = self._waiting.pop(correlation_id, None)
        if callback is not None:
            callback(body)


class RecordedEvents(EventPublisher):
    """The event publisher, keeping what the service records (nothing is flushed)."""

    def __init__(self) -> None:
        super().__init__("ingress-test")
        self.events: list[Any] = []

    def record(self, event: Any) -> None:
        self.events.append(event)


def _field(event: Any, name: str) -> Any:
    return event[name] if isinstance(event, dict) else getattr(event, name)


@dataclass
class Harness:
    service: PredictionService
    batcher: MicroBatcher
    events: RecordedEvents
    world: PredictionWorld

    async def predict(self, api_id: str, payload: Any, key: str | None = None) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)

        async def read() -> bytes:
            return body

        answer = await asyncio.wait_for(
            self.service.predict(api_id, key or self.world.keys[api_id], "application/json", read),
            TIMEOUT_S,
        )
        return answer.status, orjson.loads(answer.body)


def _no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the in-memory transport opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(params=["memory", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None in memory; on the real broker its URL and a namespace with its topology declared."""
    if request.param == "memory":
        return None
    request.getfixturevalue("topology")  # declared now, deleted after the test
    return request.getfixturevalue("rabbitmq_url"), request.getfixturevalue("namespace")


@pytest.fixture
async def harness(
    broker: tuple[str, str] | None, model_store: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    kind = "memory" if broker is None else "rabbitmq"
    world = build_world(None, model_store)  # type: ignore[arg-type]
    registry = Registry()
    registry.apply_snapshot(list(world.records.values()), datetime.now(UTC))
    batcher = MicroBatcher(max_rows=64, max_wait_s=0.002, timeout_s=TIMEOUT_S)
    events = RecordedEvents()
    url, namespace = broker or ("amqp://memory.invalid/", "memory")
    worker = Worker(
        PredictorSettings(
            namespace=namespace,
            rabbitmq_url=url,
            model_store=model_store,
            predictor_id=f"worker-{kind}",
            predictor_metrics_port=-1,
        )
    )
    settings = IngressSettings(
        namespace=namespace, rabbitmq_url=url, model_store=model_store, ingress_id="ingress-test"
    )
    service = PredictionService(
        settings, registry, RateLimiter(), batcher, events, IngressMetrics()
    )
    harness = Harness(service, batcher, events, world)
    if kind == "memory":
        _no_sockets(monkeypatch)
        transport = MemoryTransport(worker)
        batcher.attach(transport.send, transport.expect, transport.forget)
        yield harness
        worker._executor.shutdown(wait=False)
        return
    await worker.start()
    connection = await connect(url, f"service-suite-{namespace}")
    rpc = RpcClient(await connection.channel(publisher_confirms=False))
    await rpc.start()
    queue = Topology(namespace).predict_requests

    async def send(
        batch_id: str, body: bytes, expiration_s: float, headers: dict[str, str]
    ) -> None:
        await rpc.send(queue, body, batch_id, expiration_s, headers)

    batcher.attach(send, rpc.expect, rpc.forget)
    try:
        yield harness
    finally:
        await connection.close()
        await worker.stop()


class TestPredictionService:
    """The same behaviour whichever transport carries the batches."""

    async def test_a_row_is_answered_with_the_models_prediction_and_probabilities(
        self, harness: Harness
    ) -> None:
        status, body = await harness.predict("iris", IRIS_ROW)
        assert status == 200, body
        assert body["prediction"] == expected_prediction(harness.world, "iris", IRIS_ROW)
        assert set(body["probabilities"]) == {"setosa", "versicolor", "virginica"}
        assert body["request_id"]

    async def test_concurrent_requests_share_one_batch_and_each_gets_its_own_answer(
        self, harness: Harness
    ) -> None:
        rows = [{**HOUSE_ROW, "size": 50.0 + 10 * i} for i in range(5)]
        answers = await asyncio.gather(*(harness.predict("house", row) for row in rows))
        assert [status for status, _ in answers] == [200] * 5
        for row, (_, body) in zip(rows, answers, strict=True):
            assert body["prediction"] == pytest.approx(
                expected_prediction(harness.world, "house", row)
            )
        assert harness.batcher.batches_sent < 5

    async def test_instances_are_answered_in_order(self, harness: Harness) -> None:
        rows = [{**HOUSE_ROW, "rooms": r} for r in (1, 4, 2)]
        status, body = await harness.predict("house", {"instances": rows})
        assert status == 200, body
        assert [p["prediction"] for p in body["predictions"]] == pytest.approx(
            [expected_prediction(harness.world, "house", row) for row in rows]
        )

    async def test_a_missing_model_answers_503_model_unavailable(self, harness: Harness) -> None:
        status, body = await harness.predict("ghost", IRIS_ROW)
        assert status == 503 and body["error"]["code"] == "MODEL_UNAVAILABLE"

    async def test_invalid_input_answers_400_and_sends_nothing(self, harness: Harness) -> None:
        status, body = await harness.predict("iris", {"sepal_length": "wide"})
        assert status == 400 and body["error"]["code"] == "INVALID_INPUT"
        assert harness.batcher.batches_sent == 0

    async def test_a_wrong_key_answers_403_and_its_event_is_not_authenticated(
        self, harness: Harness
    ) -> None:
        status, body = await harness.predict("iris", IRIS_ROW, key="not-the-key")
        assert status == 403 and body["error"]["code"] == "INVALID_API_KEY"
        assert harness.batcher.batches_sent == 0
        (event,) = harness.events.events
        assert _field(event, "status_code") == 403 and _field(event, "authenticated") is False

    async def test_every_request_records_one_event_with_its_status(self, harness: Harness) -> None:
        await harness.predict("iris", IRIS_ROW)
        await harness.predict("iris", b"{not json")
        statuses = [_field(e, "status_code") for e in harness.events.events]
        assert statuses == [200, 400]
