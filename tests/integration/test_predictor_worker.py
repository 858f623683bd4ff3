"""Predictor workers: resource samples on the events exchange, and a graceful stop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from infra.topology import WORKER_SAMPLE_KEY
from schemas import WorkerSample
from tests.prediction_fixtures import IRIS_ROW, PredictionWorld


async def test_worker_publishes_samples_with_its_loaded_models(
    world: PredictionWorld, start_ingress: Any, start_worker: Any, topology: Any
) -> None:
    # No preloading: the sample must list exactly what the request below loaded.
    worker = await start_worker(predictor_sample_interval_s=0.3, predictor_preload=False)
    ingress = await start_ingress()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{ingress.url}/api/predict/iris",
            json=IRIS_ROW,
            headers={"X-API-Key": world.keys["iris"]},
        ) as response:
            assert response.status == 200
        async with http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics") as response:
            text = await response.text()
            assert "predictor_rows_total 1.0" in text
    samples: list[WorkerSample] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(s.loaded_models for s in samples):
        message = await topology.metrics_events.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.1)
        elif message.routing_key == WORKER_SAMPLE_KEY:
            samples.append(WorkerSample.model_validate(orjson.loads(message.body)))
    sample = next(s for s in samples if s.loaded_models)
    assert sample.worker_id == worker.worker_id
    assert sample.loaded_models == ["iris-v1"] and sample.model_memory_mb["iris-v1"] > 0
    assert sample.rss_mb > 10 and sample.cpu_percent >= 0


async def test_a_stopping_worker_finishes_its_in_flight_batch(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    worker = await start_worker()
    ingress = await start_ingress()
    busy = worker._executor.submit(time.sleep, 0.8)  # the batch below waits behind this
    async with aiohttp.ClientSession() as http:

        async def predict() -> tuple[int, Any]:
            async with http.post(
                f"{ingress.url}/api/predict/iris",
                json=IRIS_ROW,
                headers={"X-API-Key": world.keys["iris"]},
            ) as response:
                return response.status, await response.json()

        request = asyncio.create_task(predict())
        await asyncio.sleep(0.3)  # delivered to the worker, not yet predicted
        assert worker._inflight == 1
        await worker.stop()
        status, body = await request
    assert busy.done()
    assert status == 200 and body["prediction"] == "setosa"
