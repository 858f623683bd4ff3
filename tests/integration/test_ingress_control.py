"""Control events reach ingress within a second: rotated keys, deactivated and deleted APIs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from schemas import ApiChangeKind, ApiStatus
from tests.prediction_fixtures import IRIS_ROW, PredictionWorld


async def status_of(http: aiohttp.ClientSession, url: str, key: str) -> tuple[int, str]:
    async with http.post(url, json=IRIS_ROW, headers={"X-API-Key": key}) as response:
        body = await response.json()
        return response.status, body.get("error", {}).get("code", "")


async def within_a_second(
    http: aiohttp.ClientSession, url: str, key: str, expected: tuple[int, str]
) -> float:
    """Poll until the answer is ``expected``; fail if it takes longer than one second."""
    started = time.monotonic()
    while True:
        got = await status_of(http, url, key)
        elapsed = time.monotonic() - started
        if got == expected:
            return elapsed
        assert elapsed < 1.0, f"still {got} after {elapsed:.2f}s, expected {expected}"
        await asyncio.sleep(0.02)


async def test_key_rotation_deactivation_and_deletion_take_effect_within_a_second(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    await start_worker()
    ingress = await start_ingress()
    url = f"{ingress.url}/api/predict/iris"
    async with aiohttp.ClientSession() as http:
        old_key = world.keys["iris"]
        assert await status_of(http, url, old_key) == (200, "")

        new_key = await world.rotate_key("iris")
        await within_a_second(http, url, old_key, (403, "INVALID_API_KEY"))
        assert await status_of(http, url, new_key) == (200, "")

        await world.set_status("iris", ApiStatus.INACTIVE)
        await within_a_second(http, url, new_key, (403, "API_INACTIVE"))

        await world.set_status("iris", ApiStatus.ACTIVE)
        await within_a_second(http, url, new_key, (200, ""))

        await world.change(ApiChangeKind.DELETED, None, "iris")
        await within_a_second(http, url, new_key, (404, "API_NOT_FOUND"))
