"""Fixtures and helpers for the management API's tests: the app on a real broker namespace and a
real ClickHouse database, with its own SQLite file and model store per test."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from infra.migrate import migrate_database
from management_api.app import create_app
from management_api.settings import ManagementSettings

ADMIN_PASSWORD = "admin-password-for-tests"


def management_settings(tmp_path: Path, **overrides: Any) -> ManagementSettings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}",
        "model_store": tmp_path / "models",
        "management_data_dir": tmp_path / "data",
        "management_admin_password": ADMIN_PASSWORD,
        "public_ingress_url": "http://127.0.0.1:8000",
    }
    values.update(overrides)
    return ManagementSettings(**values)


@dataclass
class Api:
    """A test client with helpers to log in and call the management API as someone."""

    client: TestClient[Any, Any]
    settings: ManagementSettings

    async def token(self, username: str, password: str) -> str:
        r = await self.client.post(
            "/api/auth/token", json={"username": username, "password": password}
        )
        assert r.status == 200, await r.text()
        return str((await r.json())["access_token"])

    async def admin(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + await self.token("admin", ADMIN_PASSWORD)}

    async def new_user(self, username: str, role: str = "user") -> dict[str, str]:
        password = f"{username}-password"
        r = await self.client.post(
            "/api/users",
            json={"username": username, "password": password, "role": role},
            headers=await self.admin(),
        )
        assert r.status == 201, await r.text()
        return {"Authorization": "Bearer " + await self.token(username, password)}

    async def call(
        self, method: str, path: str, headers: dict[str, str], **kwargs: Any
    ) -> tuple[int, Any]:
        r = await self.client.request(method, path, headers=headers, **kwargs)
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body

    async def train_builtin(
        self,
        headers: dict[str, str],
        name: str,
        dataset: str = "iris",
        algorithm: str = "logistic_regression",
        **params: Any,
    ) -> dict[str, Any]:
        status, job = await self.call(
            "POST",
            "/api/models/train",
            headers,
            json={"name": name, "dataset": dataset, "algorithm": algorithm, "params": params},
        )
        assert status == 202, job
        return await self.wait_job(headers, job["id"])

    async def train_csv(
        self,
        headers: dict[str, str],
        name: str,
        csv: bytes,
        target: str,
        algorithm: str = "random_forest",
        **fields: str,
    ) -> dict[str, Any]:
        form = FormData()
        form.add_field("file", csv, filename="data.csv", content_type="text/csv")
        form.add_field("name", name)
        form.add_field("target", target)
        form.add_field("algorithm", algorithm)
        for key, value in fields.items():
            form.add_field(key, value)
        status, job = await self.call("POST", "/api/models/train", headers, data=form)
        assert status == 202, job
        return await self.wait_job(headers, job["id"])

    async def wait_job(
        self, headers: dict[str, str], job_id: str, timeout: float = 60
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, job = await self.call("GET", f"/api/training-jobs/{job_id}", headers)
            assert status == 200, job
            if job["status"] in ("succeeded", "failed"):
                return dict(job)
            assert asyncio.get_running_loop().time() < deadline, job
            await asyncio.sleep(0.05)

    async def export(self, headers: dict[str, str], model_id: str, **body: Any) -> dict[str, Any]:
        status, created = await self.call("POST", f"/api/export/{model_id}", headers, json=body)
        assert status == 201, created
        return dict(created)


def churn_csv(rows: int = 200, seed: int = 0) -> bytes:
    """A small CSV with integer, number, boolean and category features and a text target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "monthly_spend": rng.normal(50, 15, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "has_support": rng.choice(["true", "false"], rows),
        }
    )
    frame["churned"] = np.where((frame["plan"] == "basic") & (frame["age"] > 40), "yes", "no")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.fixture
async def clickhouse_db(clickhouse_server: str, ch_database: str) -> str:
    """The test's ClickHouse database with the metrics schema applied."""
    await migrate_database(clickhouse_server, ch_database)
    return ch_database


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(
    tmp_path: Path,
    rabbitmq_url: str,
    clickhouse_server: str,
    clickhouse_db: str,
    namespace: str,
    amqp: Any,
) -> AsyncIterator[MakeApi]:
    """Start the management API on the test's namespace, ClickHouse database, SQLite file and
    store, with the settings a test overrides (``make_api(management_...=...)``)."""
    clients: list[TestClient[Any, Any]] = []

    async def make(**overrides: Any) -> Api:
        settings = management_settings(
            tmp_path,
            namespace=namespace,
            rabbitmq_url=rabbitmq_url,
            clickhouse_url=clickhouse_server,
            clickhouse_database=clickhouse_db,
            **overrides,
        )
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return Api(client, settings)

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """The management API with default settings."""
    return await make_api()
