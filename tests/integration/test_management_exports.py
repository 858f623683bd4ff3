# ruff: noqa: F811
"""The export lifecycle: every change reaches the namespace's control exchange as an ApiChanged,
and the registry snapshot RPC answers from the metadata DB (real RabbitMQ)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from infra.topology import Topology
from schemas import ApiChanged, RegistrySnapshot, RegistrySnapshotRequest
from schemas.messages import encode
from tests.management_support import Api, api, clickhouse_db  # noqa: F401


async def control_queue(amqp: AbstractRobustConnection, names: Topology) -> AbstractQueue:
    channel = await amqp.channel()
    exchange = await channel.get_exchange(names.control_exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)
    return queue


async def next_change(queue: AbstractQueue, timeout: float = 10) -> ApiChanged:
    message = await queue.get(timeout=timeout, fail=False)
    deadline = asyncio.get_running_loop().time() + timeout
    while message is None:
        assert asyncio.get_running_loop().time() < deadline, "no ApiChanged on control"
        await asyncio.sleep(0.05)
        message = await queue.get(fail=False)
    await message.ack()
    return ApiChanged.model_validate_json(message.body)


async def snapshot(amqp: AbstractRobustConnection, names: Topology) -> RegistrySnapshot:
    channel = await amqp.channel()
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    correlation_id = uuid.uuid4().hex
    await channel.default_exchange.publish(
        aio_pika.Message(
            encode(RegistrySnapshotRequest(requester="test")),
            reply_to=replies.name,
            correlation_id=correlation_id,
        ),
        routing_key=names.registry_snapshot,
    )
    async with replies.iterator(timeout=10) as messages:
        async for message in messages:
            await message.ack()
            assert message.correlation_id == correlation_id
            return RegistrySnapshot.model_validate_json(message.body)
    raise AssertionError("no snapshot reply")


async def test_every_export_change_is_announced_and_the_snapshot_follows(
    api: Api, amqp: AbstractRobustConnection, topology_names: Topology
) -> None:
    """create → updated → status → key_rotated → deployed → deleted, each with the right record."""
    queue = await control_queue(amqp, topology_names)
    owner = await api.new_user("exporter")
    first = await api.train_builtin(owner, "iris")
    second = await api.train_builtin(owner, "iris", algorithm="random_forest", n_estimators=10)
    assert second["model_id"] == first["model_id"] and second["version_number"] == 2
    created = await api.export(owner, first["model_id"], version=1, rate_limit_per_minute=30)
    key = created["api_key"]
    api_id = created["api"]["id"]
    assert key.startswith("mg_") and len(key) > 60
    assert created["api"]["key_prefix"] == key[:10] and key not in str(created["api"])
    assert created["api_url"].endswith(f"/api/predict/{api_id}")

    change = await next_change(queue)
    assert change.kind == "created" and change.api is not None
    assert change.api.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert change.api.classes == ["setosa", "versicolor", "virginica"]
    assert len(change.api.features) == 4 and change.api.task == "classification"
    assert change.api.rate_limit_per_minute == 30 and change.api.version_number == 1

    records = {r.api_id: r for r in (await snapshot(amqp, topology_names)).apis}
    assert records[api_id].key_hash == change.api.key_hash

    status, body = await api.call(
        "PATCH",
        f"/api/exports/{api_id}",
        owner,
        json={"rate_limit_per_minute": 5, "alert_thresholds": {"p95_ms": 50}},
    )
    assert (
        status == 200
        and body["alert_thresholds"]["p95_ms"] == 50
        and body["alert_thresholds"]["cpu_percent"] == 80
    )
    change = await next_change(queue)
    assert (
        change.kind == "updated"
        and change.api is not None
        and change.api.rate_limit_per_minute == 5
    )

    status, body = await api.call(
        "PUT", f"/api/exports/{api_id}/status", owner, json={"status": "inactive"}
    )
    assert status == 200 and body["status"] == "inactive"
    change = await next_change(queue)
    assert change.kind == "status" and change.api is not None and change.api.status == "inactive"

    status, rotated = await api.call("POST", f"/api/exports/{api_id}/regenerate-key", owner)
    assert status == 200 and rotated["api_key"] != key
    change = await next_change(queue)
    assert change.kind == "key_rotated" and change.api is not None
    assert change.api.key_hash == hashlib.sha256(rotated["api_key"].encode()).hexdigest()

    status, body = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 2}
    )
    assert status == 200 and body["version_number"] == 2 and "model_version" not in body
    change = await next_change(queue)
    assert change.kind == "deployed" and change.api is not None
    assert change.api.version_key == second_version_id(
        await api.call("GET", f"/api/models/{first['model_id']}", owner)
    )
    status, body = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 9}
    )
    assert status == 404 and body["error"]["details"]["versions"] == [1, 2]

    status, body = await api.call("DELETE", f"/api/models/{first['model_id']}", owner)
    assert status == 409

    status, _ = await api.call("DELETE", f"/api/exports/{api_id}", owner)
    assert status == 204
    change = await next_change(queue)
    assert change.kind == "deleted" and change.api is None and change.api_id == api_id
    status, _ = await api.call("GET", f"/api/exports/{api_id}", owner)
    assert status == 404
    assert api_id not in {r.api_id for r in (await snapshot(amqp, topology_names)).apis}


def second_version_id(response: tuple[int, Any]) -> str:
    status, model = response
    assert status == 200
    return str(next(v["id"] for v in model["versions"] if v["number"] == 2))


async def test_list_filters_and_sorts(api: Api) -> None:
    """Status, model and text filters narrow the list; name sorting orders it."""
    owner = await api.new_user("lister")
    iris = await api.train_builtin(owner, "iris-flowers")
    wine = await api.train_builtin(owner, "wine-cellar", dataset="wine")
    a = await api.export(owner, iris["model_id"], name="alpha")
    b = await api.export(owner, wine["model_id"], name="bravo")
    await api.call(
        "PUT", f"/api/exports/{b['api']['id']}/status", owner, json={"status": "inactive"}
    )

    async def names(query: str) -> list[str]:
        status, body = await api.call("GET", "/api/exports?" + query, owner)
        assert status == 200, body
        return [item["name"] for item in body["items"]]

    assert await names("sort=name&order=asc") == ["alpha", "bravo"]
    assert await names("sort=name&order=desc") == ["bravo", "alpha"]
    assert await names("status=inactive") == ["bravo"]
    assert await names(f"model_id={iris['model_id']}") == ["alpha"]
    assert await names("q=cellar") == ["bravo"]
    assert await names("sort=requests") in (["alpha", "bravo"], ["bravo", "alpha"])
    status, body = await api.call("GET", "/api/exports?sort=size", owner)
    assert status == 400 and body["error"]["details"]["errors"][0]["field"] == "sort"
    status, body = await api.call("GET", f"/api/exports/{a['api']['id']}", owner)
    assert status == 200 and body["stats"]["total_requests"] == 0
