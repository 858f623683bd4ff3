"""Fixtures for the prediction path: trained models in a store, an in-memory registry announced
on the real broker, ingress in-process on a free port, predictors in-process or as subprocesses.

Registered for every test by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from infra.model_store import ModelStore
from infra.registry import RegistryResponder, publish_api_changed
from infra.topology import REQUEST_EVENTS_KEY, DeclaredTopology
from ingress.app import BATCHER, create_app
from ingress.settings import IngressSettings
from predictor.settings import PredictorSettings
from predictor.worker import Worker
from schemas import ApiChanged, ApiChangeKind, ApiRecord, ApiStatus, FeatureSpec, FeatureType, Task
from tests.services import free_port
from tests.teardown import bounded

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
HOUSE_FEATURES = ["size", "rooms", "color", "garden"]
HOUSE_COLORS = ["red", "blue", "green"]  # "green" is allowed but unseen in training: it fails


def train_iris() -> Pipeline:
    data = load_iris()
    frame = pd.DataFrame(data.data, columns=IRIS_FEATURES)
    target = np.array(data.target_names)[data.target]
    return Pipeline([("model", LogisticRegression(max_iter=500))]).fit(frame, target)


def house_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "size": rng.uniform(30, 200, n),
            "rooms": rng.integers(1, 7, n),
            "color": rng.choice(["red", "blue"], n),
            "garden": rng.choice([True, False], n),
        }
    )


def train_house() -> Pipeline:
    frame = house_frame(200)
    price = (
        frame["size"] * 3.0
        + frame["rooms"] * 10.0
        + (frame["color"] == "red") * 25.0
        + frame["garden"] * 40.0
    )
    encode = ColumnTransformer(
        [("color", OneHotEncoder(handle_unknown="error"), ["color"])], remainder="passthrough"
    )
    return Pipeline([("encode", encode), ("model", LinearRegression())]).fit(frame, price)


def new_key() -> tuple[str, str]:
    """A fresh API key and its SHA-256 hex digest."""
    key = "mg_" + secrets.token_urlsafe(32)
    return key, hashlib.sha256(key.encode()).hexdigest()


@dataclass
class PredictionWorld:
    """Models in a store, APIs announced on the broker, their keys, and helpers to change them."""

    topology: DeclaredTopology
    store: ModelStore
    records: dict[str, ApiRecord]
    keys: dict[str, str]
    models: dict[str, Any] = field(default_factory=dict)

    async def source(self) -> list[ApiRecord]:
        return list(self.records.values())

    async def change(self, kind: ApiChangeKind, record: ApiRecord | None, api_id: str) -> None:
        if record is None:
            self.records.pop(api_id, None)
        else:
            record = record.model_copy(update={"updated_at": datetime.now(UTC)})
            self.records[api_id] = record
        await publish_api_changed(self.topology, ApiChanged(kind=kind, api_id=api_id, api=record))

    async def rotate_key(self, api_id: str) -> str:
        key, digest = new_key()
        record = self.records[api_id].model_copy(update={"key_hash": digest, "key_prefix": key[:8]})
        self.keys[api_id] = key
        await self.change(ApiChangeKind.KEY_ROTATED, record, api_id)
        return key

    async def set_status(self, api_id: str, status: ApiStatus) -> None:
        record = self.records[api_id].model_copy(update={"status": status})
        await self.change(ApiChangeKind.STATUS, record, api_id)


def _record(
    api_id: str, version: str, task: Task, features: list[FeatureSpec], **kw: Any
) -> tuple[ApiRecord, str]:
    key, digest = new_key()
    record = ApiRecord(
        api_id=api_id,
        name=api_id,
        key_hash=digest,
        key_prefix=key[:8],
        version_key=version,
        task=task,
        features=features,
        rate_limit_per_minute=kw.pop("rate_limit_per_minute", 1_000_000),
        **kw,
    )
    return record, key


def build_world(topology: DeclaredTopology, store_root: Path) -> PredictionWorld:
    store = ModelStore(store_root)
    iris, house = train_iris(), train_house()
    store.save("iris-v1", iris, {"task": "classification", "features": IRIS_FEATURES})
    store.save("house-v1", house, {"task": "regression", "features": HOUSE_FEATURES})
    iris_features = [FeatureSpec(name=n, type=FeatureType.NUMBER) for n in IRIS_FEATURES]
    house_features = [
        FeatureSpec(name="size", type=FeatureType.NUMBER),
        FeatureSpec(name="rooms", type=FeatureType.INTEGER),
        FeatureSpec(name="color", type=FeatureType.CATEGORY, categories=HOUSE_COLORS),
        FeatureSpec(name="garden", type=FeatureType.BOOLEAN, required=False),
    ]
    records: dict[str, ApiRecord] = {}
    keys: dict[str, str] = {}
    specs = {
        "iris": (
            "iris-v1",
            Task.CLASSIFICATION,
            iris_features,
            {"classes": ["setosa", "versicolor", "virginica"]},
        ),
        "house": ("house-v1", Task.REGRESSION, house_features, {}),
        "limited": ("iris-v1", Task.CLASSIFICATION, iris_features, {"rate_limit_per_minute": 2}),
        "ghost": ("missing-v1", Task.CLASSIFICATION, iris_features, {}),
    }
    for api_id, (version, task, features, extra) in specs.items():
        records[api_id], keys[api_id] = _record(api_id, version, task, features, **extra)
    return PredictionWorld(topology, store, records, keys, {"iris": iris, "house": house})


IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
HOUSE_ROW = {"size": 120.0, "rooms": 3, "color": "red", "garden": True}


def expected_prediction(world: PredictionWorld, api_id: str, row: dict[str, Any]) -> Any:
    model = world.models[api_id]
    names = IRIS_FEATURES if api_id == "iris" else HOUSE_FEATURES
    value = model.predict(pd.DataFrame([[row.get(n) for n in names]], columns=names))[0]
    return value.item() if hasattr(value, "item") else value


@pytest.fixture
async def world(
    amqp: AbstractRobustConnection, topology: DeclaredTopology, model_store: Path
) -> AsyncIterator[PredictionWorld]:
    """Two trained models in the store and four APIs answered by a registry responder."""
    world = build_world(topology, model_store)
    channel = await amqp.channel()
    responder = RegistryResponder(channel, topology, world.source)
    await responder.start()
    yield world
    await bounded(responder.stop(), "registry responder stop")


@dataclass
class RunningIngress:
    app: web.Application
    runner: web.AppRunner
    url: str

    @property
    def batches_sent(self) -> int:
        return self.app[BATCHER].batches_sent


def ingress_settings(
    namespace: str, rabbitmq_url: str, model_store: Path, **overrides: Any
) -> IngressSettings:
    values: dict[str, Any] = {
        "namespace": namespace,
        "rabbitmq_url": rabbitmq_url,
        "model_store": model_store,
        "ingress_port": free_port(),
        "ingress_id": f"ingress-test-{os.getpid()}",
        "ingress_consumer_check_s": 0.2,
        "ingress_request_timeout_s": 5.0,
        "ingress_events_flush_ms": 20.0,
        # Most tests start ingress before (or without) a predictor; the readiness rule that
        # waits for one is tested on its own.
        "ingress_ready_requires_predictor": False,
    }
    values.update(overrides)
    return IngressSettings(**values)


@pytest.fixture
async def start_ingress(
    namespace: str, rabbitmq_url: str, model_store: Path
) -> AsyncIterator[Callable[..., Awaitable[RunningIngress]]]:
    """Start ingress in-process on a free port (settings overridable); stopped afterwards."""
    started: list[RunningIngress] = []

    async def start(wait_ready: bool = True, **overrides: Any) -> RunningIngress:
        settings = ingress_settings(namespace, rabbitmq_url, model_store, **overrides)
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", settings.ingress_port)
        await site.start()
        running = RunningIngress(app, runner, f"http://127.0.0.1:{settings.ingress_port}")
        started.append(running)
        if wait_ready:
            await wait_until_ready(running.url)
        return running

    yield start
    for running in started:
        await bounded(running.runner.cleanup(), "in-process ingress cleanup")


async def wait_until_ready(url: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{url}/ready") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"ingress at {url} not ready within {timeout}s")


def predictor_settings(
    namespace: str, rabbitmq_url: str, model_store: Path, **overrides: Any
) -> PredictorSettings:
    values: dict[str, Any] = {
        "namespace": namespace,
        "rabbitmq_url": rabbitmq_url,
        "model_store": model_store,
        "predictor_metrics_port": 0,
        "predictor_sample_interval_s": 1.0,
        "predictor_id": f"worker-{secrets.token_hex(3)}",
    }
    values.update(overrides)
    return PredictorSettings(**values)


@pytest.fixture
async def start_worker(
    namespace: str, rabbitmq_url: str, model_store: Path, topology: DeclaredTopology
) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Start predictor workers in-process; stopped gracefully afterwards."""
    workers: list[Worker] = []

    async def start(**overrides: Any) -> Worker:
        worker = Worker(predictor_settings(namespace, rabbitmq_url, model_store, **overrides))
        await worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await bounded(worker.stop(), f"in-process predictor {worker.worker_id} stop")


@pytest.fixture
def spawn_predictor(
    namespace: str, rabbitmq_url: str, model_store: Path, tmp_path: Path, topology: DeclaredTopology
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``python -m modelgate.cli predictor`` subprocesses; killed afterwards."""
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(**env: str) -> subprocess.Popen[bytes]:
        index = len(processes)
        full_env = {
            **os.environ,
            "MODELGATE_NAMESPACE": namespace,
            "MODELGATE_RABBITMQ_URL": rabbitmq_url,
            "MODELGATE_MODEL_STORE": str(model_store),
            "MODELGATE_PREDICTOR_METRICS_PORT": "0",
            "MODELGATE_PREDICTOR_ID": f"sub-{index}",
            **env,
        }
        log = (tmp_path / f"predictor-{index}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "modelgate.cli", "predictor"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
        processes.append(process)
        return process

    yield spawn
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait(timeout=10)


async def wait_for_consumers(
    amqp: AbstractRobustConnection, topology: DeclaredTopology, count: int, timeout: float = 30.0
) -> None:
    """Wait until the predict queue has ``count`` consumers."""
    deadline = time.monotonic() + timeout
    channel = await (await amqp.channel()).get_underlay_channel()
    while time.monotonic() < deadline:
        result = await channel.queue_declare(topology.names.predict_requests, passive=True)
        if (result.consumer_count or 0) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} predictors consuming after {timeout}s")


async def collect_request_events(
    topology: DeclaredTopology, expected: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Drain the namespace's ``metrics.events`` queue until ``expected`` request events arrived."""
    import orjson

    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    queue = topology.metrics_events
    while time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            if len(events) >= expected:
                await asyncio.sleep(0.3)
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    return events
            else:
                await asyncio.sleep(0.05)
                continue
        if message.routing_key == REQUEST_EVENTS_KEY:
            events.extend(orjson.loads(message.body)["events"])
    return events
