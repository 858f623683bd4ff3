"""The broker drops ingress's connection: events wait in the buffer, none is lost, and predictions
work again once the connection is back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.prediction_fixtures import IRIS_ROW, PredictionWorld, collect_request_events
from tests.services import close_connections_named


async def test_events_survive_a_dropped_broker_connection_and_predictions_resume(
    world: PredictionWorld, start_ingress: Any, start_worker: Any, topology: Any
) -> None:
    await start_worker()
    ingress_id = f"ingress-outage-{time.monotonic_ns()}"
    ingress = await start_ingress(ingress_id=ingress_id)
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
        closed = await asyncio.to_thread(close_connections_named, ingress_id)
        assert closed == 1
        for _ in range(30):  # while the connection is away and coming back
            await call()
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 15
        while await call() != 200:
            assert time.monotonic() < deadline, "predictions did not resume after reconnect"
            await asyncio.sleep(0.2)
    assert set(statuses) <= {200, 503, 504}
    events = await collect_request_events(topology, len(statuses), timeout=20)
    assert len({e["event_id"] for e in events}) == len(events) == len(statuses)
