"""Load shedding: past what predictors serve, ingress answers 503 at once, not at the deadline."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import aiohttp

from tests.prediction_fixtures import (
    IRIS_ROW,
    PredictionWorld,
    collect_request_events,
    wait_for_consumers,
)

BURST = 90
CAP = 30


async def test_a_burst_beyond_what_a_stalled_predictor_can_take_is_shed_at_once(
    amqp: Any,
    world: PredictionWorld,
    start_ingress: Any,
    spawn_predictor: Any,
    topology: Any,
) -> None:
    """The excess gets 503 OVERLOADED with Retry-After while the admitted requests still wait
    (long before the deadline); once the predictor runs again, the admitted ones are answered,
    and every request, answered or shed, has its event and the shed ones count in /metrics."""
    predictor = spawn_predictor()
    await wait_for_consumers(amqp, topology, 1)
    ingress = await start_ingress(ingress_request_timeout_s=30.0, ingress_max_inflight_rows=CAP)
    url = f"{ingress.url}/api/predict/iris"
    headers = {"X-API-Key": world.keys["iris"]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=BURST + 5)) as http:

        async def call() -> tuple[int, dict[str, str], Any]:
            async with http.post(url, json=IRIS_ROW, headers=headers) as response:
                return response.status, dict(response.headers), await response.json()

        assert (await call())[0] == 200  # the model is loaded and the predictor serves
        os.kill(predictor.pid, signal.SIGSTOP)  # still a consumer, but answers nothing
        try:
            calls = [asyncio.create_task(call()) for _ in range(BURST)]
            # Shed requests are answered while the predictor is stopped: nothing else can be.
            done: set[asyncio.Task[Any]] = set()
            for _ in range(200):
                done = {task for task in calls if task.done()}
                if len(done) >= BURST - CAP:
                    break
                await asyncio.sleep(0.05)
            shed = [task.result() for task in done]
        finally:
            os.kill(predictor.pid, signal.SIGCONT)
        answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
        async with http.get(f"{ingress.url}/metrics") as response:
            metrics = await response.text()
    assert len(shed) == BURST - CAP, f"{len(shed)} answered before the predictor ran again"
    for status, answer_headers, body in shed:
        assert status == 503, body
        assert body["error"]["code"] == "OVERLOADED"
        assert body["error"]["details"]["reason"] == "inflight_rows"
        assert answer_headers["Retry-After"] == "1"
        assert answer_headers["Content-Type"].startswith("application/json")
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] * CAP + [503] * (BURST - CAP)
    events = await collect_request_events(topology, BURST + 1)
    outcomes = sorted((e["status_code"], e.get("error_code") or "") for e in events)
    assert outcomes == [(200, "")] * (CAP + 1) + [(503, "OVERLOADED")] * (BURST - CAP)
    shed_line = 'ingress_requests_shed_total{api_id="iris",reason="inflight_rows"}'
    assert f"{shed_line} {float(BURST - CAP)}" in metrics
