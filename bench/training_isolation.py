"""Latency of an ordinary API route while a training job runs (issue 9 item 8).

    .venv/bin/python -m bench.training_isolation [--samples 400]

The whole management app runs in this process (real RabbitMQ at MODELGATE_RABBITMQ_URL, a
temporary SQLite DB); ``GET /api/users/me`` is called in sequence (10 ms apart) first idle, then
while a 1,000-tree random forest trains on ``digits``. Training used to run in a thread of the API
process; it now runs in a child process at lower priority, so the route should not slow down.
Run it against an older checkout (``PYTHONPATH=<checkout>``) to compare in the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from management_api.app import create_app
from management_api.settings import ManagementSettings

PASSWORD = "bench-password"


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms (n={len(ordered)})"


async def run(samples: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
    settings = ManagementSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'meta.db'}",
        model_store=tmp / "models",
        management_data_dir=tmp / "data",
        management_admin_password=PASSWORD,
        namespace=f"bench-{uuid.uuid4().hex[:6]}",
        public_ingress_url="http://127.0.0.1:8000",
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        r = await client.post("/api/auth/token", json={"username": "admin", "password": PASSWORD})
        headers = {"Authorization": "Bearer " + (await r.json())["access_token"]}

        async def sample(n: int) -> list[float]:
            out = []
            for _ in range(n):
                started = time.perf_counter()
                response = await client.get("/api/users/me", headers=headers)
                await response.read()
                out.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.01)
            return out

        idle = await sample(samples // 2)
        r = await client.post(
            "/api/models/train",
            headers=headers,
            json={
                "name": "bench",
                "dataset": "digits",
                "algorithm": "random_forest",
                "params": {"n_estimators": 1000},
            },
        )
        job = await r.json()
        await asyncio.sleep(1.0)
        busy: list[float] = []
        status = "running"
        while status in ("queued", "running") and len(busy) < samples:
            busy += await sample(20)
            r = await client.get(f"/api/training-jobs/{job['id']}", headers=headers)
            status = (await r.json())["status"]
        print(f"idle: {summary(idle)} | during training: {summary(busy)} | job {status}")
        if status in ("queued", "running"):
            await client.post(f"/api/training-jobs/{job['id']}/cancel", headers=headers)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    asyncio.run(run(parser.parse_args().samples))


if __name__ == "__main__":
    main()
