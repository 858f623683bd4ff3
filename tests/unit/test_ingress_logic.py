"""Ingress logic without sockets: validation, rate limits, registry, micro-batching, events."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from ingress.batcher import MicroBatcher
from ingress.errors import IngressError
from ingress.events import EventPublisher
from ingress.ratelimit import RateLimiter
from ingress.registry import Registry
from ingress.validation import FeatureValidator, InvalidInput
from schemas import ApiChanged, ApiChangeKind, ApiRecord, FeatureSpec, FeatureType, Task
from schemas.messages import RequestEvent, RowResult, utc_from_epoch

FEATURES = [
    FeatureSpec(name="x", type=FeatureType.NUMBER),
    FeatureSpec(name="n", type=FeatureType.INTEGER),
    FeatureSpec(name="flag", type=FeatureType.BOOLEAN, required=False),
    FeatureSpec(name="color", type=FeatureType.CATEGORY, categories=["red", "1"]),
]


def test_validator_orders_rows_and_converts_categories() -> None:
    validator = FeatureValidator(FEATURES)
    assert validator.row({"color": 1, "n": 3.0, "x": 2}) == [2, 3.0, None, "1"]


def test_validator_names_missing_unexpected_and_mistyped_fields() -> None:
    validator = FeatureValidator(FEATURES)
    with pytest.raises(InvalidInput) as info:
        validator.row({"x": True, "n": 2.5, "flag": 1, "color": "blue", "extra": 0})
    details = info.value.details
    assert details["unexpected"] == ["extra"]
    assert set(details["mistyped"]) == {"x", "n", "flag", "color"}
    assert "boolean" in details["mistyped"]["x"]  # a boolean is not a number
    assert details["allowed_categories"] == {"color": ["red", "1"]}
    with pytest.raises(InvalidInput) as info:
        validator.row({"x": 1.0})
    assert info.value.details["missing"] == ["n", "color"]
    with pytest.raises(InvalidInput) as info:
        validator.row([1, 2])
    assert "not_an_object" in info.value.details


def test_validator_reports_invalid_instances_by_index() -> None:
    validator = FeatureValidator(FEATURES)
    good = {"x": 1, "n": 1, "color": "red"}
    with pytest.raises(InvalidInput) as info:
        validator.rows([good, {"x": "a", "n": 1, "color": "red"}, good])
    assert info.value.details["invalid_instances"] == 1
    assert info.value.details["instances"][0]["index"] == 1


def test_token_bucket_allows_the_limit_then_429_until_refilled() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.take("k", 2).allowed and limiter.take("k", 2).allowed
    denied = limiter.take("k", 2)
    assert not denied.allowed and denied.retry_after_s == 30
    assert (
        denied.headers()["Retry-After"] == "30" and denied.headers()["RateLimit-Remaining"] == "0"
    )
    now[0] = 30.0
    assert limiter.take("k", 2).allowed
    assert limiter.take("other", 2).allowed  # buckets are per key


def record(api_id: str, key: str, **kw: Any) -> ApiRecord:
    return ApiRecord(
        api_id=api_id,
        name=api_id,
        key_hash=hashlib.sha256(key.encode()).hexdigest(),
        key_prefix=key[:4],
        version_key="v1",
        task=Task.REGRESSION,
        features=FEATURES,
        **kw,
    )


def test_registry_matches_keys_and_keeps_changes_newer_than_a_snapshot() -> None:
    registry = Registry()
    assert not registry.ready
    old = datetime.now(UTC) - timedelta(minutes=1)
    registry.apply_snapshot([record("a", "key-a", updated_at=old)])
    entry = registry.get("a")
    assert registry.ready and entry is not None
    assert entry.key_matches("key-a") and not entry.key_matches("key-b")
    registry.apply_change(
        ApiChanged(kind=ApiChangeKind.KEY_ROTATED, api_id="a", api=record("a", "key-b"))
    )
    registry.apply_snapshot([record("a", "key-a", updated_at=old)])  # an older snapshot
    entry = registry.get("a")
    assert entry is not None and entry.key_matches("key-b")
    registry.apply_change(ApiChanged(kind=ApiChangeKind.DELETED, api_id="a"))
    assert registry.get("a") is None


def test_an_older_snapshot_neither_hides_a_created_api_nor_revives_a_deleted_one() -> None:
    """A snapshot taken before a control event but applied after it must not undo the event."""
    registry = Registry()
    taken = datetime.now(UTC) - timedelta(seconds=5)
    registry.apply_snapshot([record("gone", "key-g", updated_at=taken)], taken)
    registry.apply_change(ApiChanged(kind=ApiChangeKind.DELETED, api_id="gone"))
    registry.apply_change(
        ApiChanged(kind=ApiChangeKind.CREATED, api_id="new", api=record("new", "key-n"))
    )
    registry.apply_snapshot([record("gone", "key-g", updated_at=taken)], taken)  # stale
    assert registry.get("gone") is None
    new = registry.get("new")
    assert new is not None and new.key_matches("key-n")
    later = datetime.now(UTC) + timedelta(seconds=1)
    registry.apply_snapshot([], later)  # a snapshot taken after the events is the truth
    assert registry.get("new") is None


class FakeTransport:
    """Records published batches; the test answers them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.callbacks: dict[str, Any] = {}
        self.errors: dict[str, Any] = {}

    async def send(
        self, batch_id: str, body: bytes, expiration_s: float, headers: dict[str, str]
    ) -> None:
        self.sent.append(orjson.loads(body))
        self.headers.append(headers)

    def expect(self, batch_id: str, callback: Any, on_error: Any) -> None:
        self.callbacks[batch_id] = callback
        self.errors[batch_id] = on_error

    def close(self) -> None:
        """The channel closed: fail every pending batch (as ``infra.amqp.RpcClient`` does)."""
        errors, self.errors = self.errors, {}
        self.callbacks.clear()
        for fail in errors.values():
            fail(ConnectionError("channel closed"))

    def forget(self, batch_id: str) -> None:
        self.callbacks.pop(batch_id, None)

    def answer(self, index: int) -> None:
        batch = self.sent[index]
        results = [{"prediction": row[0] * 10} for row in batch["rows"]]
        reply = {"batch_id": batch["batch_id"], "worker_id": "w", "results": results}
        self.callbacks.pop(batch["batch_id"])(orjson.dumps(reply))


async def test_batcher_sends_one_message_for_many_requests_and_splits_the_reply() -> None:
    transport = FakeTransport()
    batcher = MicroBatcher(max_rows=64, max_wait_s=0.005, timeout_s=1.0)
    batcher.attach(transport.send, transport.expect, transport.forget)
    futures = [batcher.submit("v1", ["x"], False, [[i]]) for i in range(3)]
    futures.append(batcher.submit("v1", ["x"], False, [[7], [8]]))
    await asyncio.sleep(0.02)
    assert len(transport.sent) == 1 and transport.sent[0]["rows"] == [[0], [1], [2], [7], [8]]
    transport.answer(0)
    answers = [await f for f in futures]
    assert [a.results for a in answers[:3]] == [
        [RowResult(prediction=0)],
        [RowResult(prediction=10)],
        [RowResult(prediction=20)],
    ]
    assert answers[3].results == [RowResult(prediction=70), RowResult(prediction=80)]
    assert answers[3].batch_rows == 5


async def test_batcher_flushes_full_batches_at_once_and_times_out_with_504() -> None:
    transport = FakeTransport()
    batcher = MicroBatcher(max_rows=2, max_wait_s=10.0, timeout_s=0.05)
    batcher.attach(transport.send, transport.expect, transport.forget)
    first = batcher.submit("v1", ["x"], False, [[1]])
    second = batcher.submit("v1", ["x"], False, [[2]])
    await asyncio.sleep(0)
    assert len(transport.sent) == 1
    with pytest.raises(IngressError) as info:
        await first
    assert info.value.status == 504
    with pytest.raises(IngressError):
        await second


async def test_a_sent_batch_fails_with_503_the_moment_its_channel_closes() -> None:
    """Before: a batch in flight when the broker dropped waited out its deadline (504)."""
    transport = FakeTransport()
    batcher = MicroBatcher(max_rows=1, max_wait_s=0.001, timeout_s=60.0)
    batcher.attach(transport.send, transport.expect, transport.forget)
    future = batcher.submit("v1", ["x"], False, [[1]])
    await asyncio.sleep(0)
    assert len(transport.sent) == 1
    transport.close()
    with pytest.raises(IngressError) as info:
        await asyncio.wait_for(future, 1.0)
    assert info.value.status == 503 and batcher.waiting == 0


async def test_batcher_answers_503_at_once_when_no_predictor_consumes() -> None:
    batcher = MicroBatcher(max_rows=2, max_wait_s=0.01, timeout_s=1.0)
    transport = FakeTransport()
    batcher.attach(transport.send, transport.expect, transport.forget)
    batcher.predictors_online = False
    with pytest.raises(IngressError) as info:
        batcher.submit("v1", ["x"], False, [[1]])
    assert info.value.status == 503 and transport.sent == []


async def test_batches_grow_while_the_in_flight_limit_is_reached() -> None:
    transport = FakeTransport()
    batcher = MicroBatcher(max_rows=64, max_wait_s=0.001, timeout_s=1.0, max_inflight=1)
    batcher.attach(transport.send, transport.expect, transport.forget)
    first = batcher.submit("v1", ["x"], False, [[1]])
    await asyncio.sleep(0.01)
    later = [batcher.submit("v1", ["x"], False, [[i]]) for i in range(5)]
    await asyncio.sleep(0.01)
    assert len(transport.sent) == 1  # the second batch waits for the first answer
    transport.answer(0)
    await first
    await asyncio.sleep(0)
    assert len(transport.sent) == 2 and len(transport.sent[1]["rows"]) == 5
    transport.answer(1)
    assert [(await f).results[0].prediction for f in later] == [0, 10, 20, 30, 40]


def event(i: int) -> RequestEvent:
    ts = utc_from_epoch(1_700_000_000.0 + i)
    return RequestEvent(event_id=f"e{i}", ts=ts, api_id="a", status_code=200)


async def test_events_wait_while_the_broker_is_away_and_retry_with_the_same_batch_id() -> None:
    published: list[tuple[str, bytes]] = []
    broker_up = False

    async def publish(batch_id: str, body: bytes) -> None:
        if not broker_up:
            raise ConnectionError("broker away")
        published.append((batch_id, body))

    events = EventPublisher("ingress-1", flush_s=0.01, flush_max=3, buffer_max=100)
    events.attach(publish)
    for i in range(7):
        events.record(event(i))
    assert not await events.flush()
    assert events.depth == 7 and events.failures == 1
    pending_id = events._pending[0] if events._pending else None
    broker_up = True
    assert await events.flush()
    assert events.depth == 0 and events.published == 7
    assert published[0][0] == pending_id
    ids = [e["event_id"] for _, body in published for e in orjson.loads(body)["events"]]
    assert ids == [f"e{i}" for i in range(7)]
    first = orjson.loads(published[0][1])
    assert first["ingress_id"] == "ingress-1" and first["events"][0]["ts"].startswith("2023-11-14T")


def test_a_full_event_buffer_drops_the_oldest_and_counts_them() -> None:
    events = EventPublisher("ingress-1", buffer_max=5)
    for i in range(8):
        events.record(event(i))
    assert events.depth == 5 and events.dropped == 3
