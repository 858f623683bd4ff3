"""Warm switch on the real broker: predictors load and warm a deployed version before any request
asks for it and report it ready; ingress keeps answering with the old version until that report
(or its bound) and only then moves the API's traffic."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aio_pika.abc import AbstractQueue, AbstractRobustConnection
from prometheus_client.parser import text_string_to_metric_families

from infra import amqp as broker
from infra.topology import VERSION_READY_KEY, DeclaredTopology
from ingress.app import REGISTRY
from schemas import ApiChangeKind, VersionReady
from schemas.messages import decode, encode
from tests.prediction_fixtures import HOUSE_ROW, IRIS_FEATURES, IRIS_ROW, PredictionWorld


async def ready_reports(
    amqp: AbstractRobustConnection, topology: DeclaredTopology
) -> AbstractQueue:
    """A queue of this test's own that receives every ``VersionReady`` of the namespace."""
    channel = await amqp.channel()
    queue = await channel.declare_queue(
        f"{topology.names.namespace}.test-ready.{uuid.uuid4().hex[:6]}",
        exclusive=True,
        auto_delete=True,
    )
    await queue.bind(topology.events, routing_key=VERSION_READY_KEY)
    return queue


async def next_reports(
    queue: AbstractQueue, until: Callable[[list[VersionReady]], bool], timeout: float = 30.0
) -> list[VersionReady]:
    """Reports as they come, until ``until`` holds for those received so far."""
    reports: list[VersionReady] = []
    deadline = time.monotonic() + timeout
    while not until(reports):
        assert time.monotonic() < deadline, f"reports so far: {reports}"
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.02)
        else:
            reports.append(decode(message.body, VersionReady))
    return reports


def about(version: str) -> Callable[[list[VersionReady]], bool]:
    return lambda reports: any(r.version_key == version for r in reports)


async def predict(
    http: aiohttp.ClientSession, url: str, key: str, row: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=row, headers={"X-API-Key": key}) as response:
        return response.status, await response.json()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"never saw {what}"
        await asyncio.sleep(0.05)


async def deploy(world: PredictionWorld, api_id: str, version: str, number: int) -> None:
    record = world.records[api_id].model_copy(
        update={"version_key": version, "version_number": number}
    )
    await world.change(ApiChangeKind.DEPLOYED, record, api_id)


async def preloads(http: aiohttp.ClientSession, port: int | None) -> dict[str, float]:
    """``predictor_preloads_total`` by outcome and the load-time count, from ``/metrics``."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "predictor_preloads_total":
                found[sample.labels["outcome"]] = sample.value
            elif sample.name == "predictor_preload_seconds_count":
                found["timed"] = sample.value
    return found


async def test_ingress_answers_with_the_old_version_until_the_new_one_is_reported_ready(
    world: PredictionWorld, start_ingress: Any, start_worker: Any, topology: DeclaredTopology
) -> None:
    """With a predictor that does not preload, nothing reports the version: ingress holds it."""
    world.store.save("iris-v2", world.models["iris"], {"features": IRIS_FEATURES})
    worker = await start_worker(predictor_preload=False)
    ingress = await start_ingress(ingress_warm_switch_timeout_s=300.0)
    registry = ingress.app[REGISTRY]
    url, key = f"{ingress.url}/api/predict/iris", world.keys["iris"]
    async with aiohttp.ClientSession() as http:
        assert (await predict(http, url, key, IRIS_ROW))[1]["model_version"] == "iris-v1"

        changes = registry.changes
        await deploy(world, "iris", "iris-v2", 2)

        async def deploy_arrived() -> bool:
            return registry.changes > changes

        await eventually(deploy_arrived, "the deploy event at ingress")
        assert registry.pending_switches == 1
        for _ in range(5):
            status, body = await predict(http, url, key, IRIS_ROW)
            assert (status, body["model_version"]) == (200, "iris-v1"), body
        assert not worker.cache.holds("iris-v2")

        # A report from some predictor (here the test speaks for one) moves the traffic.
        ready = VersionReady(version_key="iris-v2", predictor_id="elsewhere", ok=True)
        await broker.publish(topology.events, encode(ready), VERSION_READY_KEY, mandatory=False)

        async def serves_v2() -> bool:
            status, body = await predict(http, url, key, IRIS_ROW)
            return status == 200 and body["model_version"] == "iris-v2"

        await eventually(serves_v2, "answers from iris-v2")
        assert registry.switches_on_ready == 1 and registry.switches_timed_out == 0
        assert worker.cache.holds("iris-v2")


async def test_predictors_warm_deployed_versions_before_their_requests_and_report_failures(
    world: PredictionWorld,
    start_ingress: Any,
    start_worker: Any,
    topology: DeclaredTopology,
    amqp: AbstractRobustConnection,
) -> None:
    reports = await ready_reports(amqp, topology)
    worker = await start_worker()
    # At start: the versions the registry snapshot serves (the ghost API's cannot load).
    started = await next_reports(
        reports, lambda rs: {r.version_key for r in rs} >= {"iris-v1", "house-v1", "missing-v1"}
    )
    outcome = {r.version_key: r.ok for r in started}
    assert outcome == {"iris-v1": True, "house-v1": True, "missing-v1": False}, started
    assert worker.cache.holds("iris-v1") and worker.cache.holds("house-v1")
    ingress = await start_ingress(ingress_warm_switch_timeout_s=5.0)
    registry = ingress.app[REGISTRY]
    iris_url, house_url = f"{ingress.url}/api/predict/iris", f"{ingress.url}/api/predict/house"
    async with aiohttp.ClientSession() as http:
        before = await preloads(http, worker.metrics_port)
        assert before["ok"] == 2 and before["failed"] == 1 and before["timed"] == 2
        status, body = await predict(http, iris_url, world.keys["iris"], IRIS_ROW)
        assert (status, body["model_version"]) == (200, "iris-v1")
        loads = worker.cache.loads

        # A deploy: the predictor loads and warms iris-v2 with no request asking for it yet.
        world.store.save("iris-v2", world.models["iris"], {"features": IRIS_FEATURES})
        batches = ingress.batches_sent
        await deploy(world, "iris", "iris-v2", 2)
        (report,) = await next_reports(reports, about("iris-v2"))
        assert report.ok and report.predictor_id == worker.worker_id and report.load_ms > 0
        assert worker.cache.holds("iris-v2") and worker.cache.loads == loads + 1
        assert ingress.batches_sent == batches  # no request asked for it
        after = await preloads(http, worker.metrics_port)
        assert (after["ok"], after["failed"], after["timed"]) == (3, 1, 3)

        async def iris_serves_v2() -> bool:
            status, body = await predict(http, iris_url, world.keys["iris"], IRIS_ROW)
            return status == 200 and body["model_version"] == "iris-v2"

        await eventually(iris_serves_v2, "answers from iris-v2")
        assert worker.cache.loads == loads + 1  # the requests found it loaded
        assert registry.switches_timed_out == 0

        # A version that cannot load: reported failed, the worker keeps serving, the API stays
        # on its old version until the bound, then switches (and answers 503 like any missing
        # version would).
        await deploy(world, "house", "missing-v2", 2)
        (failed,) = await next_reports(reports, about("missing-v2"))
        assert not failed.ok and "missing-v2" in failed.error
        status, body = await predict(http, house_url, world.keys["house"], HOUSE_ROW)
        assert (status, body["model_version"]) == (200, "house-v1"), body
        assert registry.pending_switches == 1
        assert (await preloads(http, worker.metrics_port))["failed"] == 2

        async def house_switched() -> bool:
            status, body = await predict(http, house_url, world.keys["house"], HOUSE_ROW)
            return status == 503 and body["error"]["code"] == "MODEL_UNAVAILABLE"

        await eventually(house_switched, "the switch once the bound passed")
        assert registry.switches_timed_out == 1 and registry.pending_switches == 0
        status, body = await predict(http, iris_url, world.keys["iris"], IRIS_ROW)
        assert (status, body["model_version"]) == (200, "iris-v2")
