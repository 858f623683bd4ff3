"""The management API's issue items against the whole stack ``modelgate up`` runs (ingress,
predictors, metrics-consumer, ClickHouse, RabbitMQ): train, export, call through ingress, watch
monitoring, follow the docs' curl, and every lifecycle change as a client sees it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.management_support import churn_csv
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)


class Client:
    """A logged-in user of the management API, and a caller of ingress."""

    def __init__(self, session: aiohttp.ClientSession, stack: Stack) -> None:
        self.session = session
        self.stack = stack
        self.headers: dict[str, str] = {}

    async def call(self, method: str, path: str, expect: int | None = 200, **kwargs: Any) -> Any:
        async with self.session.request(
            method, self.stack.management_url + path, headers=self.headers, **kwargs
        ) as r:
            body = await r.json(content_type=None) if r.status != 204 else None
            if expect is not None:
                assert r.status == expect, f"{method} {path}: {r.status} {body}"
            return body

    async def login(self, username: str, password: str) -> None:
        token = await self.call(
            "POST", "/api/auth/token", json={"username": username, "password": password}
        )
        self.headers = {"Authorization": "Bearer " + token["access_token"]}

    async def wait_job(self, job: dict[str, Any]) -> dict[str, Any]:
        for _ in range(600):
            if job["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
            job = await self.call("GET", f"/api/training-jobs/{job['id']}")
        assert job["status"] == "succeeded", job
        return job

    async def train_iris(self, name: str, algorithm: str = "logistic_regression") -> dict[str, Any]:
        job = await self.call(
            "POST",
            "/api/models/train",
            expect=202,
            json={"name": name, "dataset": "iris", "algorithm": algorithm},
        )
        return await self.wait_job(job)

    async def predict(self, api_url: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with self.session.post(api_url, json=body, headers={"X-API-Key": key}) as r:
            return r.status, await r.json(content_type=None)


@pytest.fixture
async def user(stack: Stack) -> AsyncIterator[Client]:
    """A fresh user of the running stack, logged in."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        admin = Client(session, stack)
        await admin.login(stack.admin_username, stack.admin_password)
        username, password = f"u{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        await admin.call(
            "POST", "/api/users", expect=201, json={"username": username, "password": password}
        )
        client = Client(session, stack)
        await client.login(username, password)
        yield client


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 15, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_trained_models_answer_through_ingress_and_monitoring_shows_the_requests(
    user: Client,
) -> None:
    iris_job = await user.train_iris("e2e-iris", "random_forest")
    form = aiohttp.FormData()
    form.add_field("file", churn_csv(), filename="churn.csv", content_type="text/csv")
    for key, value in {
        "name": "e2e-churn",
        "target": "churned",
        "algorithm": "gradient_boosting",
    }.items():
        form.add_field(key, value)
    csv_job = await user.wait_job(
        await user.call("POST", "/api/models/train", expect=202, data=form)
    )

    calls = {}
    for job, count in ((iris_job, 12), (csv_job, 8)):
        created = await user.call("POST", f"/api/export/{job['model_id']}", expect=201, json={})
        docs = await user.call("GET", f"/api/exports/{created['api']['id']}/docs")
        classes = docs["classes"]
        for _ in range(count):
            status, answer = await user.predict(
                created["api_url"], created["api_key"], docs["example_request"]
            )
            assert status == 200, answer
            assert answer["prediction"] in classes
        calls[created["api"]["id"]] = count
    csv_features = {f["name"]: f for f in docs["features"]}
    assert csv_features["plan"]["type"] == "category"
    status, answer = await user.predict(
        created["api_url"], created["api_key"], {**docs["example_request"], "plan": 3}
    )
    assert status == 400, answer
    calls[created["api"]["id"]] += 1

    for api_id, count in calls.items():

        async def arrived(api_id: str = api_id, count: int = count) -> bool:
            stats = await user.call("GET", f"/api/monitoring/apis/{api_id}/stats?range=24h")
            return bool(stats["total_requests"] == count)

        await eventually(arrived, 20, f"{count} requests of {api_id} in monitoring")
        stats = await user.call("GET", f"/api/monitoring/apis/{api_id}/stats?range=24h")
        assert (
            stats["p50_ms"] > 0 and stats["p99_ms"] >= stats["p50_ms"] and stats["last_request_at"]
        )
        series = await user.call(
            "GET", f"/api/monitoring/apis/{api_id}/timeseries?range=24h&bucket=hour"
        )
        assert sum(p["requests"] for p in series["points"]) == count
        history = await user.call("GET", f"/api/monitoring/apis/{api_id}/requests?page_size=5")
        assert history["total"] == count and len(history["items"]) == 5
    errors = await user.call(
        "GET", f"/api/monitoring/apis/{created['api']['id']}/requests?status=4xx"
    )
    assert errors["total"] == 1 and errors["items"][0]["status_code"] == 400
    listing = await user.call("GET", "/api/monitoring/apis?sort=requests&order=desc")
    assert [i["stats"]["total_requests"] for i in listing["items"]] == [12, 9]


async def test_docs_curl_works_exactly_as_printed_with_the_key(user: Client) -> None:
    job = await user.train_iris("e2e-docs")
    created = await user.call("POST", f"/api/export/{job['model_id']}", expect=201, json={})
    docs = await user.call("GET", f"/api/exports/{created['api']['id']}/docs")
    assert docs["endpoint_url"] == created["api_url"] and "YOUR_API_KEY" in docs["curl"]
    command = docs["curl"].replace("YOUR_API_KEY", created["api_key"])
    result = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", command], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["prediction"] == docs["example_response"]["prediction"]
    assert set(answer["probabilities"]) == set(docs["classes"])


async def test_lifecycle_changes_reach_ingress(user: Client) -> None:
    """deactivate → 403; regenerate → old key refused, new works; deploy → new version without a
    failed request; delete → 404."""
    first = await user.train_iris("e2e-life")
    created = await user.call(
        "POST",
        f"/api/export/{first['model_id']}",
        expect=201,
        json={"rate_limit_per_minute": 100000},
    )
    api_id, url, key = created["api"]["id"], created["api_url"], created["api_key"]
    body = (await user.call("GET", f"/api/exports/{api_id}/docs"))["example_request"]

    async def answers(status: int, with_key: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return (await user.predict(url, with_key, body))[0] == status

        return check

    await eventually(await answers(200, key), what="the new API to answer")
    await user.call("PUT", f"/api/exports/{api_id}/status", json={"status": "inactive"})
    await eventually(await answers(403, key), what="403 after deactivation")
    status, answer = await user.predict(url, key, body)
    assert status == 403 and answer["error"]["code"] == "API_INACTIVE"
    await user.call("PUT", f"/api/exports/{api_id}/status", json={"status": "active"})
    await eventually(await answers(200, key), what="200 after reactivation")

    rotated = await user.call("POST", f"/api/exports/{api_id}/regenerate-key")
    new_key = rotated["api_key"]
    await eventually(await answers(200, new_key), what="the new key to work")
    status, answer = await user.predict(url, key, body)
    assert status in (401, 403) and answer["error"]["code"] == "INVALID_API_KEY"

    second = await user.train_iris("e2e-life", "gradient_boosting")
    assert second["version_number"] == 2
    model = await user.call("GET", f"/api/models/{first['model_id']}")
    v1, v2 = (next(v["id"] for v in model["versions"] if v["number"] == n) for n in (1, 2))
    status, answer = await user.predict(url, new_key, body)
    assert status == 200 and answer["model_version"] == v1

    failures: list[Any] = []
    versions: list[str] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            status, answer = await user.predict(url, new_key, body)
            if status != 200:
                failures.append((status, answer))
            else:
                versions.append(answer["model_version"])

    senders = [asyncio.create_task(traffic()) for _ in range(4)]
    await asyncio.sleep(0.5)
    deployed = await user.call("POST", f"/api/exports/{api_id}/deploy", json={"version": 2})
    assert deployed["version_number"] == 2 and deployed["model_version_id"] == v2

    async def switched() -> bool:
        return len(versions) > 0 and versions[-1] == v2

    await eventually(switched, what="answers from version 2")
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*senders)
    assert not failures, failures[:3]
    assert v1 in versions and versions[-1] == v2
    switch = versions.index(v2)
    assert set(versions[switch + 8 :]) <= {v2}

    await user.call("DELETE", f"/api/exports/{api_id}", expect=204)
    await eventually(await answers(404, new_key), what="404 after deletion")


async def run_demo(stack: Stack, *args: str) -> dict[str, Any]:
    database = stack.model_store.parent / "modelgate.db"  # where tests/stack.py puts it
    env = {
        **os.environ,
        "MODELGATE_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "MODELGATE_MANAGEMENT_PORT": stack.management_url.rsplit(":", 1)[1],
        "MODELGATE_NAMESPACE": stack.namespace,
        "MODELGATE_STACK_DATA_DIR": str(stack.data_dir),  # where it keeps the demo's secrets
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "modelgate.cli", "demo", "--json", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


async def test_demo_prints_what_works_keeps_key_and_password_and_rotates_them_on_reset(
    stack: Stack,
) -> None:
    """Run again, the demo keeps its key and password (browsers stay logged in, kept in 0600
    files of the data dir); ``--reset`` makes new ones and the old ones stop working."""
    first = await run_demo(stack, "--rate-limit", "1000")
    assert set(first) >= {
        "dashboard_url",
        "username",
        "password",
        "api_id",
        "api_url",
        "api_key",
        "example_request",
    }
    assert first["verified"] is True
    result = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", first["curl"]], capture_output=True, text=True
    )
    assert "prediction" in json.loads(result.stdout), result.stdout

    kept = await run_demo(stack)
    assert kept["api_id"] == first["api_id"] and kept["verified"] is True
    assert (kept["api_key"], kept["password"]) == (first["api_key"], first["password"])
    for name in ("demo-password", "demo-api-key"):
        assert (stack.data_dir / name).stat().st_mode & 0o777 == 0o600
    assert (stack.data_dir / "demo-api-key").read_text().strip() == first["api_key"]

    second = await run_demo(stack, "--reset")
    assert second["api_id"] == first["api_id"] and second["verified"] is True
    assert second["api_key"] != first["api_key"] and second["password"] != first["password"]
    async with aiohttp.ClientSession() as session:
        client = Client(session, stack)
        status, _ = await client.predict(
            second["api_url"], first["api_key"], first["example_request"]
        )
        assert status in (401, 403)
        await client.call(
            "POST",
            "/api/auth/token",
            expect=401,
            json={"username": "demo", "password": first["password"]},
        )
        await client.login("demo", second["password"])
        me = await client.call("GET", "/api/users/me")
        models = await client.call("GET", "/api/models")
        mine = [m for m in models["items"] if m["owner_id"] == me["id"]]
        assert [m["name"] for m in mine] == ["demo-iris"]
        apis = await client.call("GET", f"/api/exports?model_id={mine[0]['id']}")
        assert len(apis["items"]) == 1 and apis["items"][0]["rate_limit_per_minute"] == 1000
