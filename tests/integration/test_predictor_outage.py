"""The broker drops a predictor's connection: the worker reconnects by itself and serves again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.prediction_fixtures import IRIS_ROW, PredictionWorld
from tests.services import close_connections_named


async def test_a_predictor_whose_connection_drops_reconnects_and_answers_again(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    """No request hangs while the only predictor is away, and predictions resume after."""
    worker_id = f"predictor-outage-{time.monotonic_ns()}"
    await start_worker(predictor_id=worker_id)
    ingress = await start_ingress(ingress_request_timeout_s=2.0)
    headers = {"X-API-Key": world.keys["iris"]}
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:

        async def call() -> int:
            async with http.post(
                f"{ingress.url}/api/predict/iris", json=IRIS_ROW, headers=headers
            ) as response:
                statuses.append(response.status)
                return response.status

        assert await call() == 200
        assert await asyncio.to_thread(close_connections_named, worker_id) == 1
        deadline = time.monotonic() + 30
        while await call() != 200:
            assert time.monotonic() < deadline, f"predictions did not resume: {statuses[-5:]}"
            await asyncio.sleep(0.2)
    assert statuses[-1] == 200
    assert set(statuses) <= {200, 503, 504}, statuses
