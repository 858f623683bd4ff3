# ruff: noqa: F811
"""The deploy guard (issue 11): a version that would break today's requests is refused with 409
``INCOMPATIBLE_VERSION`` and the diff, the API keeps serving (management API, ingress and a
predictor on a real RabbitMQ namespace); ``force`` deploys it, for the owner only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.management_support import Api, MakeApi, clickhouse_db, make_api  # noqa: F401
from tests.prediction_fixtures import RunningIngress

IRIS_FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


async def predict(url: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"X-API-Key": key}) as response,
    ):
        return response.status, await response.json()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_an_incompatible_deploy_is_refused_and_the_api_keeps_serving_until_forced(
    make_api: MakeApi,
    start_ingress: Callable[..., Awaitable[RunningIngress]],
    start_worker: Callable[..., Awaitable[Any]],
) -> None:
    api = await make_api()
    owner = await api.new_user("guard-owner")
    bob = await api.new_user("guard-bob")
    v1 = await api.train_builtin(owner, "flowers")  # iris
    v2 = await api.train_builtin(owner, "flowers", dataset="wine")  # same task, other inputs
    v3 = await api.train_builtin(owner, "flowers", algorithm="random_forest", n_estimators=5)
    assert [j["status"] for j in (v1, v2, v3)] == ["succeeded"] * 3, (v1, v2, v3)
    assert (v2["version_number"], v3["version_number"]) == (2, 3)
    created = await api.export(owner, v1["model_id"], version=1, rate_limit_per_minute=100000)
    api_id, url, key = created["api"]["id"], created["api_url"], created["api_key"]
    await start_worker()
    ingress = await start_ingress()
    url = ingress.url + url[url.index("/api/predict/") :]
    status, docs = await api.call("GET", f"/api/exports/{api_id}/docs", owner)
    assert status == 200, docs
    body = docs["example_request"]

    async def answers_200() -> bool:
        return (await predict(url, key, body))[0] == 200

    await eventually(answers_200, "the API to answer through ingress")
    _, model = await api.call("GET", f"/api/models/{v1['model_id']}", owner)
    version_ids = {v["number"]: v["id"] for v in model["versions"]}

    # The preview and the refusal carry the same diff: iris features missing, wine's required.
    status, preview = await api.call("GET", f"/api/exports/{api_id}/compatibility?version=2", owner)
    assert status == 200, preview
    assert preview["compatible"] is False
    assert (preview["served_version"], preview["target_version"]) == (1, 2)
    assert preview["missing_features"] == IRIS_FEATURES
    assert "alcohol" in preview["added_required_features"]
    assert preview["classes"]["removed"] == ["setosa", "versicolor", "virginica"]
    status, refused = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 2}
    )
    assert status == 409, refused
    assert refused["error"]["code"] == "INCOMPATIBLE_VERSION"
    assert "force" in refused["error"]["message"]
    details = dict(refused["error"]["details"])
    details.pop("request_id", None)
    assert details == preview

    # Nothing changed: the management API and ingress still serve version 1.
    status, current = await api.call("GET", f"/api/exports/{api_id}", owner)
    assert status == 200 and current["version_number"] == 1, current
    assert current["model_version_id"] == version_ids[1]
    status, answer = await predict(url, key, body)
    assert status == 200 and answer["model_version"] == version_ids[1], answer

    # A compatible version (same inputs and classes) deploys without force.
    status, compatible = await api.call(
        "GET", f"/api/exports/{api_id}/compatibility?version=3", owner
    )
    assert status == 200 and compatible["compatible"] is True, compatible
    status, deployed = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 3}
    )
    assert status == 200 and deployed["version_number"] == 3, deployed

    async def serves_v3() -> bool:
        status, answer = await predict(url, key, body)
        return status == 200 and answer["model_version"] == version_ids[3]

    await eventually(serves_v3, "ingress to serve version 3")

    # Another user can neither preview nor force; nothing changes.
    for method, path, kwargs in (
        ("POST", f"/api/exports/{api_id}/deploy", {"json": {"version": 2, "force": True}}),
        ("GET", f"/api/exports/{api_id}/compatibility?version=2", {}),
    ):
        status, answer = await api.call(method, path, bob, **kwargs)
        assert status == 404 and answer["error"]["code"] == "NOT_FOUND", answer
    status, current = await api.call("GET", f"/api/exports/{api_id}", owner)
    assert current["version_number"] == 3

    # The owner forces version 2: it is served, and the old requests now fail as the diff said.
    status, forced = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 2, "force": True}
    )
    assert status == 200 and forced["version_number"] == 2, forced
    assert forced["model_version_id"] == version_ids[2]

    async def old_requests_refused() -> bool:
        return (await predict(url, key, body))[0] == 400

    await eventually(old_requests_refused, "ingress to serve version 2")
    status, answer = await predict(url, key, body)
    assert answer["error"]["code"] == "INVALID_INPUT"
    assert set(answer["error"]["details"]["unexpected"]) == set(IRIS_FEATURES)


async def test_the_preview_validates_its_query_and_an_admin_can_force(make_api: MakeApi) -> None:
    api = await make_api()
    owner = await api.new_user("guard-query")
    job = await api.train_builtin(owner, "flowers")
    created = await api.export(owner, job["model_id"])
    api_id = created["api"]["id"]
    status, latest = await api.call("GET", f"/api/exports/{api_id}/compatibility", owner)
    assert status == 200, latest
    assert (latest["served_version"], latest["target_version"], latest["compatible"]) == (
        1,
        1,
        True,
    )
    for query, code, expected in (
        ("version=0", 400, "INVALID_INPUT"),
        ("version=x", 400, "INVALID_INPUT"),
        ("versions=2", 400, "INVALID_INPUT"),
        ("version=7", 404, "NOT_FOUND"),
    ):
        status, answer = await api.call(
            "GET", f"/api/exports/{api_id}/compatibility?{query}", owner
        )
        assert status == code and answer["error"]["code"] == expected, (query, answer)
    status, answer = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 1, "force": "yes"}
    )
    assert status == 400, answer

    # An admin may force another user's API too (as every owner check lets admins through).
    await api.train_builtin(owner, "flowers", dataset="wine")
    admin = await api.admin()
    status, refused = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", admin, json={"version": 2}
    )
    assert status == 409 and refused["error"]["code"] == "INCOMPATIBLE_VERSION", refused
    status, forced = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", admin, json={"version": 2, "force": True}
    )
    assert status == 200 and forced["version_number"] == 2, forced
