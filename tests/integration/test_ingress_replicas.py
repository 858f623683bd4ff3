"""Several ingress processes on one ``SO_REUSEPORT`` port (real processes, real RabbitMQ), and a
rate limit that stays the limit across them: spread over new connections (the kernel spreads them
over the replicas), on one keep-alive connection, and after a replica is SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schemas import FeatureSpec, FeatureType, Task
from tests.prediction_fixtures import IRIS_FEATURES, IRIS_ROW, PredictionWorld, _record
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LIMIT = 100
REQUESTS = 300
HEARTBEAT_S = 0.25


class Replica:
    """One ``modelgate ingress`` process and its own Unix socket (its /ready, /metrics)."""

    def __init__(self, index: int, process: subprocess.Popen[bytes], sock: Path, log: Path):
        self.index, self.process, self.sock, self.log = index, process, sock, log

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def get(self, path: str) -> tuple[int, str]:
        connector = aiohttp.UnixConnector(path=str(self.sock))
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(f"http://replica{path}") as response:
                return response.status, await response.text()

    async def metric(self, name: str, labels: str = "") -> float:
        _, text = await self.get("/metrics")
        pattern = "^" + re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" (\S+)"
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    async def served(self, api_id: str) -> float:
        """Requests of ``api_id`` this process answered (any status)."""
        _, text = await self.get("/metrics")
        return sum(
            float(value)
            for value in re.findall(
                r'ingress_requests_total\{api_id="' + re.escape(api_id) + r'",[^}]*\} (\S+)', text
            )
        )


async def wait_for(
    check: Callable[[], Any], what: str, replicas: list[Replica], timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for replica in replicas:
            assert replica.process.poll() is None, replica.log_tail()
        try:
            if await check():
                return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} within {timeout}s\n" + replicas[0].log_tail())


@pytest.fixture
def limited_world(world: PredictionWorld) -> PredictionWorld:
    """Three more iris APIs limited to ``LIMIT`` a minute (in the snapshot the replicas load)."""
    features = [FeatureSpec(name=n, type=FeatureType.NUMBER) for n in IRIS_FEATURES]
    for api_id in ("spread", "keepalive", "afterkill"):
        record, key = _record(
            api_id,
            "iris-v1",
            Task.CLASSIFICATION,
            features,
            classes=["setosa", "versicolor", "virginica"],
            rate_limit_per_minute=LIMIT,
        )
        world.records[api_id], world.keys[api_id] = record, key
    return world


@pytest.fixture
def spawn_replicas(
    namespace: str, rabbitmq_url: str, model_store: Path, tmp_path: Path
) -> Iterator[Callable[[int], tuple[str, list[Replica]]]]:
    """Start N ingress processes on one port with SO_REUSEPORT; killed afterwards."""
    started: list[Replica] = []

    def spawn(count: int) -> tuple[str, list[Replica]]:
        port = free_port()
        replicas = []
        for index in range(1, count + 1):
            sock = tmp_path / f"ingress-{index}.sock"
            log = tmp_path / f"ingress-{index}.log"
            env = {
                **os.environ,
                "MODELGATE_NAMESPACE": namespace,
                "MODELGATE_RABBITMQ_URL": rabbitmq_url,
                "MODELGATE_MODEL_STORE": str(model_store),
                "MODELGATE_INGRESS_PORT": str(port),
                "MODELGATE_INGRESS_ID": f"ingress-{index}",
                "MODELGATE_INGRESS_REUSE_PORT": "true",
                "MODELGATE_INGRESS_ADMIN_SOCKET": str(sock),
                "MODELGATE_INGRESS_PEER_HEARTBEAT_S": str(HEARTBEAT_S),
                "MODELGATE_INGRESS_EVENTS_SPOOL_DIR": str(tmp_path / f"spool-{index}"),
                "MODELGATE_INGRESS_EVENTS_FLUSH_MS": "20",
                "MODELGATE_INGRESS_CONSUMER_CHECK_S": "0.2",
                # One client address sends every request here.
                "MODELGATE_HTTP_PER_ADDRESS_EXEMPT_LOOPBACK": "true",
            }
            process = subprocess.Popen(
                [sys.executable, "-m", "modelgate.cli", "ingress"],
                env=env,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
            )
            replica = Replica(index, process, sock, log)
            replicas.append(replica)
            started.append(replica)
        return f"http://127.0.0.1:{port}", replicas

    yield spawn
    for replica in started:
        if replica.process.poll() is None:
            replica.process.kill()
            replica.process.wait(timeout=10)


async def all_ready(replicas: list[Replica], live: int) -> None:
    """Each replica ready (its own /ready, on its own socket) and knowing ``live`` replicas."""

    async def check() -> bool:
        for replica in replicas:
            status, _ = await replica.get("/ready")
            if status != 200 or await replica.metric("ingress_replicas_live") != live:
                return False
        return True

    await wait_for(check, f"{len(replicas)} replicas ready, each knowing {live}", replicas)


async def spread(url: str, api_id: str, key: str) -> int:
    """``REQUESTS`` requests, each on a new connection, 10 at a time; how many were let through
    (any answer but 429 passed the limit)."""
    passed = 0
    limiter = asyncio.Semaphore(10)
    connector = aiohttp.TCPConnector(force_close=True, limit=10)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> None:
            nonlocal passed
            async with limiter:
                async with http.post(
                    f"{url}/api/predict/{api_id}", json=IRIS_ROW, headers={"X-API-Key": key}
                ) as response:
                    await response.read()
                    assert response.status in (200, 429), response.status
                    passed += response.status != 429

        await asyncio.gather(*(one() for _ in range(REQUESTS)))
    return passed


@pytest.fixture
async def worker(start_worker: Any) -> AsyncIterator[None]:
    await start_worker()
    yield


async def test_three_replicas_on_one_port_let_the_limit_through_spread_or_on_one_connection(
    limited_world: PredictionWorld, worker: None, spawn_replicas: Any
) -> None:
    url, replicas = spawn_replicas(3)
    await all_ready(replicas, live=3)

    passed = await spread(url, "spread", limited_world.keys["spread"])
    served = [await replica.served("spread") for replica in replicas]
    assert all(count > 0 for count in served), served  # the kernel did spread them
    assert sum(served) == REQUESTS
    assert LIMIT - 5 <= passed <= LIMIT + 5, (passed, served)

    # One keep-alive connection: one replica sees all of it and takes (almost) the whole limit
    # once its demand is announced.
    key = limited_world.keys["keepalive"]
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as http:
        endpoint = f"{url}/api/predict/keepalive"
        async with http.post(endpoint, json=IRIS_ROW, headers={"X-API-Key": key}) as response:
            assert response.status == 200
        (home,) = [r for r in replicas if await r.served("keepalive")]
        sent = await home.metric("ingress_peer_heartbeats_sent")

        async def announced() -> bool:  # its demand announced, its bucket re-split
            return await home.metric("ingress_peer_heartbeats_sent") >= sent + 2

        await wait_for(announced, "two heartbeats of the replica serving the connection", replicas)
        passed = 1
        for _ in range(REQUESTS - 1):
            async with http.post(endpoint, json=IRIS_ROW, headers={"X-API-Key": key}) as response:
                await response.read()
                passed += response.status == 200
                remaining = response.headers["RateLimit-Remaining"]
                assert response.headers["RateLimit-Limit"] == str(LIMIT)
                if response.status == 429:
                    assert int(response.headers["Retry-After"]) >= 1 and remaining == "0"
    served = [await replica.served("keepalive") for replica in replicas]
    assert sorted(served) == [0, 0, REQUESTS], served
    assert LIMIT - 5 <= passed <= LIMIT + 5, passed


async def test_a_killed_replica_s_share_goes_back_to_the_others_once_it_expires(
    limited_world: PredictionWorld, worker: None, spawn_replicas: Any
) -> None:
    url, replicas = spawn_replicas(3)
    await all_ready(replicas, live=3)
    killed, survivors = replicas[2], replicas[:2]
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(timeout=10)
    # No goodbye: the survivors count it until three heartbeats are missed.
    await all_ready(survivors, live=2)

    passed = await spread(url, "afterkill", limited_world.keys["afterkill"])
    served = [await replica.served("afterkill") for replica in survivors]
    assert all(count > 0 for count in served) and sum(served) == REQUESTS, served
    # Each of the two holds half the limit (a third each, 67 in all, had the share stayed).
    assert LIMIT - 5 <= passed <= LIMIT + 5, (passed, served)
