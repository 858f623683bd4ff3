# ruff: noqa: F811
"""Canary and shadow traffic, management side (issue 11): setting, promoting and rolling back a
split is announced on the real control exchange with the split in the ApiRecord (and in the
registry snapshot); incompatible versions are refused with nothing changed; other users get 404;
monitoring splits its figures by version and measures shadow agreement over a real ClickHouse."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import msgspec
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from infra.clickhouse import create_async_client
from infra.topology import Topology
from schemas import ApiChanged, ApiChangeKind, RegistrySnapshot, RegistrySnapshotRequest
from schemas.messages import RequestEvent, encode
from tests.integration.metrics_support import make_events, store_events
from tests.management_support import Api, api, clickhouse_db  # noqa: F401


async def control_queue(amqp: AbstractRobustConnection, names: Topology) -> AbstractQueue:
    channel = await amqp.channel()
    exchange = await channel.get_exchange(names.control_exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)
    return queue


async def next_change(queue: AbstractQueue, timeout: float = 10) -> ApiChanged:
    deadline = asyncio.get_running_loop().time() + timeout
    message = await queue.get(fail=False)
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


def code_of(body: Any) -> str:
    return str(body["error"]["code"])


async def test_canary_promote_rollback_are_announced_and_guarded(
    api: Api, amqp: AbstractRobustConnection, topology_names: Topology
) -> None:
    alice = await api.new_user("traffic-alice")
    bob = await api.new_user("traffic-bob")
    v1 = await api.train_builtin(alice, "flowers")  # iris, logistic regression
    v2 = await api.train_builtin(alice, "flowers", algorithm="random_forest", n_estimators=5)
    v3 = await api.train_builtin(alice, "flowers", dataset="wine")  # other inputs and classes
    assert [j["status"] for j in (v1, v2, v3)] == ["succeeded"] * 3, (v1, v2, v3)
    created = await api.export(alice, v1["model_id"], version=1)
    api_id = created["api"]["id"]
    assert created["api"]["traffic"] is None and created["api"]["previous_version_number"] is None
    _, model = await api.call("GET", f"/api/models/{v1['model_id']}", alice)
    key = {v["number"]: v["id"] for v in model["versions"]}
    queue = await control_queue(amqp, topology_names)
    base = f"/api/exports/{api_id}"

    # A 10 % canary: answered, announced with the split, shown by GET and the list.
    status, body = await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 2, "mode": "canary", "weight_percent": 10}
    )
    assert status == 200, body
    split = {
        "version_number": 2,
        "model_version_id": key[2],
        "mode": "canary",
        "weight_percent": 10,
    }
    assert body["traffic"] == split and body["version_number"] == 1
    change = await next_change(queue)
    assert change.api_id == api_id and change.api is not None
    assert change.api.version_key == key[1]
    assert change.api.traffic is not None
    assert change.api.traffic.model_dump(mode="json") == {
        "version_key": key[2],
        "version_number": 2,
        "mode": "canary",
        "weight_percent": 10.0,
    }
    status, shown = await api.call("GET", base, alice)
    assert status == 200 and shown["traffic"] == split
    _, listed = await api.call("GET", "/api/exports", alice)
    assert [a["traffic"] for a in listed["items"] if a["id"] == api_id] == [split]
    [record] = [r for r in (await snapshot(amqp, topology_names)).apis if r.api_id == api_id]
    assert record.traffic is not None and record.traffic.version_key == key[2]

    # Refusals change nothing: another model's inputs, the version served, bad weights, Bob.
    status, refused = await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 3, "mode": "shadow"}
    )
    assert status == 409 and code_of(refused) == "INCOMPATIBLE_VERSION", refused
    assert refused["error"]["details"]["compatible"] is False
    assert "sepal_length_cm" in refused["error"]["details"]["missing_features"]
    status, refused = await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 1, "mode": "canary", "weight_percent": 5}
    )
    assert status == 409 and code_of(refused) == "CONFLICT", refused
    for bad in (
        {"version": 2, "mode": "canary"},
        {"version": 2, "mode": "canary", "weight_percent": 0},
        {"version": 2, "mode": "canary", "weight_percent": 100.5},
        {"version": 2, "mode": "blue-green", "weight_percent": 5},
        {"version": "2", "mode": "canary", "weight_percent": 5},
        {"version": 2, "mode": "canary", "weight_percent": 5, "extra": 1},
    ):
        status, refused = await api.call("PUT", f"{base}/traffic", alice, json=bad)
        assert status == 400 and code_of(refused) == "INVALID_INPUT", (bad, refused)
    status, refused = await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 9, "mode": "shadow"}
    )
    assert status == 404, refused
    for method, path, kwargs in (
        ("PUT", f"{base}/traffic", {"json": {"version": 2, "mode": "shadow"}}),
        ("PUT", f"{base}/traffic", {}),
        ("DELETE", f"{base}/traffic", {}),
        ("POST", f"{base}/promote", {}),
        ("POST", f"{base}/rollback", {}),
    ):
        status, refused = await api.call(method, path, bob, **kwargs)
        assert status == 404 and code_of(refused) == "NOT_FOUND", (method, path, refused)
    status, shown = await api.call("GET", base, alice)
    assert shown["traffic"] == split and shown["version_number"] == 1

    # Promote: version 2 serves, version 1 is remembered, the split is gone; announced.
    status, promoted = await api.call("POST", f"{base}/promote", alice)
    assert status == 200, promoted
    assert promoted["version_number"] == 2 and promoted["model_version_id"] == key[2]
    assert promoted["traffic"] is None and promoted["previous_version_number"] == 1
    change = await next_change(queue)
    assert change.kind is ApiChangeKind.DEPLOYED and change.api is not None
    assert (change.api.version_key, change.api.version_number) == (key[2], 2)
    assert change.api.traffic is None
    status, refused = await api.call("POST", f"{base}/promote", alice)
    assert status == 409 and code_of(refused) == "CONFLICT", refused

    # Roll back: version 1 serves again, once.
    status, rolled = await api.call("POST", f"{base}/rollback", alice)
    assert status == 200, rolled
    assert rolled["version_number"] == 1 and rolled["previous_version_number"] is None
    change = await next_change(queue)
    assert change.api is not None and change.api.version_key == key[1]
    status, refused = await api.call("POST", f"{base}/rollback", alice)
    assert status == 409 and code_of(refused) == "CONFLICT", refused
    assert "nothing to roll back" in refused["error"]["message"]

    # A shadow mirrors everything by default; rollback stops it (the version served stays).
    status, body = await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 2, "mode": "shadow"}
    )
    assert status == 200 and body["traffic"]["mode"] == "shadow", body
    assert body["traffic"]["weight_percent"] == 100
    change = await next_change(queue)
    assert change.api is not None and change.api.traffic is not None
    assert change.api.traffic.mode == "shadow"
    status, rolled = await api.call("POST", f"{base}/rollback", alice)
    assert status == 200 and rolled["traffic"] is None and rolled["version_number"] == 1
    change = await next_change(queue)
    assert change.api is not None and change.api.traffic is None

    # DELETE stops a split too, and deploying the canary's version clears it.
    await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 2, "mode": "canary", "weight_percent": 50}
    )
    status, stopped = await api.call("DELETE", f"{base}/traffic", alice)
    assert status == 200 and stopped["traffic"] is None and stopped["version_number"] == 1
    await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 2, "mode": "canary", "weight_percent": 50}
    )
    status, deployed = await api.call("POST", f"{base}/deploy", alice, json={"version": 2})
    assert status == 200 and deployed["traffic"] is None, deployed
    assert deployed["previous_version_number"] == 1

    # Three promotes (or rollbacks) at once, as a double click or two tabs send them: one applies,
    # the others are 409 instead of each writing over the state it read.
    status, body = await api.call(
        "PUT", f"{base}/traffic", alice, json={"version": 1, "mode": "shadow"}
    )
    assert status == 200, body
    for action in ("promote", "rollback"):
        answers = await asyncio.gather(
            *(api.call("POST", f"{base}/{action}", alice) for _ in range(3))
        )
        assert sorted(status for status, _ in answers) == [200, 409, 409], (action, answers)
    status, shown = await api.call("GET", base, alice)
    assert (shown["version_number"], shown["previous_version_number"]) == (2, None), shown


def event(base: RequestEvent, **changes: Any) -> RequestEvent:
    return msgspec.structs.replace(base, event_id=uuid.uuid4().hex, **changes)


async def test_monitoring_splits_figures_by_version_and_measures_shadow_agreement(
    api: Api, clickhouse_db: str
) -> None:
    owner = await api.new_user("traffic-monitor")
    other = await api.new_user("traffic-other")
    v1 = await api.train_builtin(owner, "split")
    v2 = await api.train_builtin(owner, "split", algorithm="random_forest", n_estimators=5)
    assert [j["status"] for j in (v1, v2)] == ["succeeded"] * 2, (v1, v2)
    created = await api.export(owner, v1["model_id"], version=1)
    api_id = created["api"]["id"]
    _, model = await api.call("GET", f"/api/models/{v1['model_id']}", owner)
    key = {v["number"]: v["id"] for v in model["versions"]}

    start = datetime.now(UTC) - timedelta(minutes=10)
    [base] = make_events(1, [api_id], start=start)
    base = msgspec.structs.replace(base, status_code=200, prediction="setosa")
    ts = [start + timedelta(seconds=i) for i in range(60)]
    primaries = [
        event(base, ts=ts[i], version_key=key[1], total_ms=10.0, status_code=500 if i < 3 else 200)
        for i in range(30)
    ]
    canaries = [
        event(base, ts=ts[i], version_key=key[2], total_ms=20.0, status_code=503 if i < 1 else 200)
        for i in range(10)
    ]
    # Version 2 shadows 8 successful primaries (6 agree) and fails once (not compared).
    shadows = [
        event(
            base,
            ts=p.ts + timedelta(milliseconds=5),
            version_key=key[2],
            total_ms=30.0,
            shadow=True,
            shadow_of=p.event_id,
            prediction="setosa" if i < 6 else "virginica",
        )
        for i, p in enumerate(primaries[3:11])
    ]
    shadows.append(
        event(
            base,
            version_key=key[2],
            shadow=True,
            shadow_of=primaries[12].event_id,
            status_code=500,
            total_ms=30.0,
            prediction="",
        )
    )
    client = await create_async_client(api.settings.clickhouse_url)
    try:
        await store_events(client, clickhouse_db, primaries + canaries + shadows)
    finally:
        await client.close()

    url = f"/api/monitoring/apis/{api_id}"
    status, plain = await api.call("GET", f"{url}/stats?range=24h", owner)
    assert status == 200, plain
    assert plain["by_version"] is None and plain["requests_in_range"] == 40  # shadows left out

    status, stats = await api.call("GET", f"{url}/stats?range=24h&by=version", owner)
    assert status == 200, stats
    assert stats["requests_in_range"] == 40
    first, second = stats["by_version"]
    assert (first["version_number"], first["model_version_id"]) == (1, key[1])
    assert (first["requests"], first["errors_5xx"], first["error_rate"]) == (30, 3, 0.1)
    assert abs(first["p50_ms"] - 10.0) < 0.01 and first["shadow"] is None
    assert (second["version_number"], second["requests"], second["errors_5xx"]) == (2, 10, 1)
    assert abs(second["p95_ms"] - 20.0) < 0.01
    shadow = second["shadow"]
    assert (shadow["requests"], shadow["errors"], shadow["compared"], shadow["agreed"]) == (
        9,
        1,
        8,
        6,
    )
    assert shadow["agreement_rate"] == 0.75 and abs(shadow["p99_ms"] - 30.0) < 0.01
    # Shadow answers are nobody's requests: not in the slowest list nor the history.
    shadow_ids = {e.event_id for e in shadows}
    assert len(stats["slowest"]) == 10 and not shadow_ids & {
        r["event_id"] for r in stats["slowest"]
    }
    status, history = await api.call("GET", f"{url}/requests?page_size=1000", owner)
    assert status == 200 and history["total"] == 40, history["total"]
    assert not shadow_ids & {r["event_id"] for r in history["items"]}

    status, series = await api.call("GET", f"{url}/timeseries?range=24h&by=version", owner)
    assert status == 200, series
    totals = {
        s["version_number"]: sum(p["requests"] for p in s["points"]) for s in series["by_version"]
    }
    assert totals == {1: 30, 2: 10}
    assert all(len(s["points"]) == len(series["points"]) for s in series["by_version"])
    assert sum(p["requests"] for p in series["points"]) == 40

    for query in ("by=model", "by=VERSION", "by=1", "by=version&range=1y"):
        status, refused = await api.call("GET", f"{url}/stats?{query}", owner)
        assert status == 400 and code_of(refused) == "INVALID_INPUT", (query, refused)
    status, refused = await api.call("GET", f"{url}/timeseries?by=versions", owner)
    assert status == 400, refused
    status, refused = await api.call("GET", f"{url}/stats?by=version", other)
    assert status == 404, refused

    # A regressor's shadow has its figures but no agreement (equal numbers would mean little).
    r1 = await api.train_builtin(owner, "dose", dataset="diabetes", algorithm="linear_regression")
    r2 = await api.train_builtin(owner, "dose", dataset="diabetes", algorithm="linear_regression")
    assert [j["status"] for j in (r1, r2)] == ["succeeded"] * 2, (r1, r2)
    regressor = (await api.export(owner, r1["model_id"], version=1))["api"]["id"]
    _, model = await api.call("GET", f"/api/models/{r1['model_id']}", owner)
    rkey = {v["number"]: v["id"] for v in model["versions"]}
    served = [event(base, api_id=regressor, version_key=rkey[1], prediction="151.0")]
    mirrored = [
        event(
            base,
            api_id=regressor,
            version_key=rkey[2],
            shadow=True,
            prediction="151.0",
            shadow_of=served[0].event_id,
        )
    ]
    client = await create_async_client(api.settings.clickhouse_url)
    try:
        await store_events(client, clickhouse_db, served + mirrored)
    finally:
        await client.close()
    status, stats = await api.call(
        "GET", f"/api/monitoring/apis/{regressor}/stats?by=version", owner
    )
    assert status == 200, stats
    [one, two] = stats["by_version"]
    assert (one["version_number"], one["requests"], one["shadow"]) == (1, 1, None)
    assert (two["version_number"], two["requests"], two["shadow"]["requests"]) == (2, 0, 1)
    assert two["shadow"]["agreement_rate"] is None and two["shadow"]["compared"] == 0
