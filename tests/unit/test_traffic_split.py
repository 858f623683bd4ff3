"""Canary and shadow traffic without sockets: the per-request draw (seeded), its bounds, the warm
hold on a new traffic version, the bounded shadow calls, and what the client and the events get."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ingress.batcher import BatchAnswer, MicroBatcher
from ingress.errors import IngressError
from ingress.events import EventPublisher
from ingress.metrics import IngressMetrics
from ingress.ratelimit import RateLimiter
from ingress.registry import ApiEntry, Registry
from ingress.service import PredictionService
from ingress.settings import IngressSettings
from ingress.traffic import Route, ShadowCalls, TrafficRouter
from schemas import (
    ApiChanged,
    ApiChangeKind,
    ApiRecord,
    ErrorCode,
    FeatureSpec,
    FeatureType,
    Task,
    TrafficMode,
    TrafficSplit,
)
from schemas.messages import PredictResult, RequestEvent, RowResult

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "mg_test-key"
FEATURES = [FeatureSpec(name="x", type=FeatureType.NUMBER)]


def split(mode: TrafficMode, weight: float, version: str = "v2") -> TrafficSplit:
    return TrafficSplit(version_key=version, version_number=2, mode=mode, weight_percent=weight)


def record(
    version: str = "v1", traffic: TrafficSplit | None = None, at: datetime = T0
) -> ApiRecord:
    return ApiRecord(
        api_id="a",
        name="a",
        key_hash=hashlib.sha256(KEY.encode()).hexdigest(),
        key_prefix=KEY[:8],
        version_key=version,
        version_number=int(version[1:]),
        task=Task.CLASSIFICATION,
        features=FEATURES,
        classes=["no", "yes"],
        rate_limit_per_minute=1_000_000,
        traffic=traffic,
        updated_at=at,
    )


def entry(traffic: TrafficSplit | None) -> ApiEntry:
    return ApiEntry.of(record(traffic=traffic), 100)


# -- the draw --------------------------------------------------------------------------------


def test_a_canary_answers_its_share_of_requests_drawn_from_a_seedable_source() -> None:
    canary = entry(split(TrafficMode.CANARY, 10))
    router = TrafficRouter(random.Random(7))
    routes = [router.route(canary) for _ in range(10_000)]
    hits = sum(r.canary for r in routes)
    assert 900 <= hits <= 1100, hits
    assert {r.version_key for r in routes if r.canary} == {"v2"}
    assert {r.version_key for r in routes if not r.canary} == {"v1"}
    assert all(r.shadow_key is None for r in routes)
    # The same seed, the same decisions: a test can replay them.
    again = TrafficRouter(random.Random(7))
    assert [again.route(canary) for _ in range(10_000)] == routes


def test_weight_bounds_and_no_split() -> None:
    router = TrafficRouter(random.Random(1))
    assert all(router.route(entry(split(TrafficMode.CANARY, 100))).canary for _ in range(1000))
    tiny = entry(split(TrafficMode.CANARY, 0.01))
    assert sum(router.route(tiny).canary for _ in range(10_000)) <= 10
    plain = entry(None)
    assert {router.route(plain) for _ in range(100)} == {Route("v1")}
    # A split naming the serving version itself is no split (no double call, no false canary).
    same = ApiEntry.of(record(traffic=split(TrafficMode.SHADOW, 100, "v1")), 100)
    assert same.traffic is None and router.route(same) == Route("v1")


def test_a_shadow_mirrors_its_share_and_the_serving_version_still_answers() -> None:
    shadow = entry(split(TrafficMode.SHADOW, 25))
    router = TrafficRouter(random.Random(3))
    routes = [router.route(shadow) for _ in range(4000)]
    mirrored = [r for r in routes if r.shadow_key is not None]
    assert {r.version_key for r in routes} == {"v1"} and not any(r.canary for r in routes)
    assert {r.shadow_key for r in mirrored} == {"v2"}
    assert 880 <= len(mirrored) <= 1120, len(mirrored)


# -- the warm hold on a traffic version --------------------------------------------------------


def changed(rec: ApiRecord) -> ApiChanged:
    return ApiChanged(kind=ApiChangeKind.UPDATED, api_id="a", api=rec, at=rec.updated_at)


def test_a_new_traffic_version_waits_until_warm_promote_and_rollback_apply_at_once() -> None:
    registry = Registry(warm_switch_timeout_s=30.0)
    registry.apply_snapshot([record()], T0)
    canary = record(traffic=split(TrafficMode.CANARY, 10), at=T0 + timedelta(seconds=1))
    registry.apply_change(changed(canary))
    held = registry.get("a")
    assert held is not None and held.traffic is None and held.version_key == "v1"
    assert registry.pending_switches == 1
    assert registry.version_ready("v2") == ["a"]
    live = registry.get("a")
    assert live is not None and live.traffic == canary.traffic

    # Promote: the canary version becomes the serving one; it took traffic, so it is warm.
    registry.apply_change(changed(record("v2", at=T0 + timedelta(seconds=2))))
    promoted = registry.get("a")
    assert promoted is not None and promoted.version_key == "v2" and promoted.traffic is None
    assert registry.pending_switches == 0

    # A shadow of a cold version, then a rollback (no split) before it is warm: at once.
    registry.apply_change(
        changed(record("v2", split(TrafficMode.SHADOW, 50, "v3"), T0 + timedelta(seconds=3)))
    )
    assert registry.pending_switches == 1
    registry.apply_change(changed(record("v2", at=T0 + timedelta(seconds=4))))
    assert registry.pending_switches == 0
    rolled = registry.get("a")
    assert rolled is not None and rolled.version_key == "v2" and rolled.traffic is None


def test_a_deploy_with_a_canary_waits_for_both_versions() -> None:
    registry = Registry(warm_switch_timeout_s=30.0)
    registry.apply_snapshot([record()], T0)
    registry.apply_change(
        changed(record("v2", split(TrafficMode.CANARY, 5, "v3"), T0 + timedelta(seconds=1)))
    )
    assert registry.version_ready("v2") == []
    waiting = registry.get("a")
    assert waiting is not None and waiting.version_key == "v1" and waiting.traffic is None
    assert registry.version_ready("v3") == ["a"]
    live = registry.get("a")
    assert live is not None and live.version_key == "v2"
    assert live.traffic is not None and live.traffic.version_key == "v3"


# -- bounded shadow calls ----------------------------------------------------------------------


async def test_shadow_calls_beyond_the_cap_are_dropped_not_queued() -> None:
    calls = ShadowCalls(max_inflight=3)
    release = asyncio.Event()
    ran: list[int] = []

    async def call(n: int) -> None:
        await release.wait()
        ran.append(n)

    started = [calls.start(functools.partial(call, n)) for n in range(5)]
    assert started == [True, True, True, False, False]
    assert calls.inflight == 3 and calls.dropped == 2
    release.set()
    await calls.stop(timeout_s=5.0)
    assert sorted(ran) == [0, 1, 2] and calls.inflight == 0
    assert calls.start(lambda: call(9))  # room again once they ended
    await calls.stop(timeout_s=5.0)


# -- the service: what the client gets, what the events say -------------------------------------


class FakeBatcher(MicroBatcher):
    """Answers each version's rows at once ("yes" from v1, "no" from others); ``fail`` versions
    answer a whole-batch error; ``hold`` versions never answer until released."""

    def __init__(self) -> None:
        super().__init__(max_rows=64, max_wait_s=0.001, timeout_s=5.0)
        self.calls: list[str] = []
        self.fail: set[str] = set()
        self.hold: dict[str, list[asyncio.Future[BatchAnswer]]] = {}

    def submit(
        self,
        version_key: str,
        feature_names: list[str],
        want_proba: bool,
        rows: list[list[Any]],
        trace: Any = None,
    ) -> asyncio.Future[BatchAnswer]:
        self.calls.append(version_key)
        future: asyncio.Future[BatchAnswer] = asyncio.get_running_loop().create_future()
        if version_key in self.hold:
            self.hold[version_key].append(future)
            return future
        if version_key in self.fail:
            reply = PredictResult(
                batch_id="b", results=[], error_code="PREDICTION_FAILED", error_message="boom"
            )
        else:
            label = "yes" if version_key == "v1" else "no"
            results = [RowResult(prediction=label, probabilities={label: 1.0}) for _ in rows]
            reply = PredictResult(batch_id="b", version_key=version_key, results=results)
        future.set_result(BatchAnswer(reply, 0, len(rows), len(rows)))
        return future


class Recorded(EventPublisher):
    def __init__(self) -> None:
        super().__init__("ingress-test")
        self.events: list[RequestEvent] = []

    def record(self, event: RequestEvent) -> None:
        self.events.append(event)


def service(
    traffic: TrafficSplit | None, seed: int = 0, max_shadows: int = 256
) -> tuple[PredictionService, FakeBatcher, Recorded, IngressMetrics]:
    registry = Registry()
    registry.apply_snapshot([record(traffic=traffic)], T0)
    batcher, events, metrics = FakeBatcher(), Recorded(), IngressMetrics()
    settings = IngressSettings(ingress_shadow_max_inflight=max_shadows)
    svc = PredictionService(
        settings,
        registry,
        RateLimiter(),
        batcher,
        events,
        metrics,
        router=TrafficRouter(random.Random(seed)),
    )
    return svc, batcher, events, metrics


async def ask(svc: PredictionService, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = orjson.dumps(body)

    async def read() -> bytes:
        return raw

    answer = await svc.predict("a", KEY, "application/json", read)
    return answer.status, orjson.loads(answer.body)


def metric(metrics: IngressMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def settle(svc: PredictionService) -> None:
    await svc.shadows.stop(timeout_s=5.0)


async def test_a_canary_answer_names_its_version_and_all_its_rows_go_together() -> None:
    svc, batcher, events, metrics = service(split(TrafficMode.CANARY, 30), seed=5)
    answers = [await ask(svc, {"instances": [{"x": 1}, {"x": 2}, {"x": 3}]}) for _ in range(300)]
    by_version = {v: [b for _, b in answers if b["model_version"] == v] for v in ("v1", "v2")}
    assert (
        60 <= len(by_version["v2"]) <= 120 and len(by_version["v1"]) + len(by_version["v2"]) == 300
    )
    for version, label in (("v1", "yes"), ("v2", "no")):
        for body in by_version[version]:
            assert [p["prediction"] for p in body["predictions"]] == [label] * 3
    assert len(batcher.calls) == 300  # one submission per request, never split across versions
    assert [e.version_key for e in events.events] == [b["model_version"] for _, b in answers]
    assert not any(e.shadow for e in events.events)
    assert metric(metrics, "ingress_canary_requests_total", api_id="a") == len(by_version["v2"])


async def test_a_shadow_is_recorded_linked_to_its_request_and_never_answered() -> None:
    svc, _, events, metrics = service(split(TrafficMode.SHADOW, 100))
    status, body = await ask(svc, {"x": 1.5})
    await settle(svc)
    assert (status, body["model_version"], body["prediction"]) == (200, "v1", "yes")
    primary, shadow = events.events
    assert (primary.version_key, primary.shadow, primary.prediction) == ("v1", False, "yes")
    assert primary.event_id == body["request_id"]
    assert (shadow.version_key, shadow.shadow, shadow.shadow_of) == ("v2", True, body["request_id"])
    assert shadow.event_id != primary.event_id
    assert (shadow.status_code, shadow.prediction, shadow.rows) == (200, "no", 1)
    assert shadow.authenticated and shadow.total_ms > 0
    assert orjson.loads(shadow.output)["model_version"] == "v2"
    assert metric(metrics, "ingress_shadow_calls_total", api_id="a", outcome="sent") == 1
    # The API's request figures count the client's request only.
    assert metric(metrics, "ingress_requests_total", api_id="a", version="1", status="200") == 1


async def test_a_failing_shadow_changes_nothing_the_client_gets() -> None:
    svc, batcher, events, metrics = service(split(TrafficMode.SHADOW, 100))
    batcher.fail.add("v2")
    answers = [await ask(svc, {"x": 1.0}) for _ in range(5)]
    await settle(svc)
    assert all(s == 200 and b["model_version"] == "v1" for s, b in answers)
    shadows = [e for e in events.events if e.shadow]
    assert len(shadows) == 5
    assert {(e.status_code, e.error_code) for e in shadows} == {(500, "PREDICTION_FAILED")}
    assert metric(metrics, "ingress_shadow_calls_total", api_id="a", outcome="failed") == 5
    assert metric(metrics, "ingress_requests_total", api_id="a", version="1", status="200") == 5
    assert metric(metrics, "ingress_requests_total", api_id="a", version="1", status="500") == 0


async def test_a_slow_shadow_never_delays_the_answer_and_excess_shadows_are_dropped() -> None:
    svc, batcher, events, metrics = service(split(TrafficMode.SHADOW, 100), max_shadows=2)
    batcher.hold["v2"] = []
    answers = [await ask(svc, {"x": 1.0}) for _ in range(5)]  # answered while v2 never replies
    assert all(s == 200 and b["model_version"] == "v1" for s, b in answers)
    for _ in range(10):  # let the two shadow tasks reach the batcher
        await asyncio.sleep(0)
    assert svc.shadows.inflight == 2 and len(batcher.hold["v2"]) == 2
    assert metric(metrics, "ingress_shadow_calls_total", api_id="a", outcome="dropped") == 3
    timeout = IngressError(504, ErrorCode.TIMEOUT, "no prediction")
    for future in batcher.hold["v2"]:
        future.set_exception(timeout)
    await settle(svc)
    shadows = [e for e in events.events if e.shadow]
    assert [(e.status_code, e.error_code) for e in shadows] == [(504, "TIMEOUT")] * 2
    assert {e.shadow_of for e in shadows} <= {b["request_id"] for _, b in answers}


async def test_invalid_input_is_not_mirrored() -> None:
    svc, batcher, events, _ = service(split(TrafficMode.SHADOW, 100))
    status, _ = await ask(svc, {"x": "not a number"})
    await settle(svc)
    assert status == 400 and batcher.calls == [] and len(events.events) == 1
