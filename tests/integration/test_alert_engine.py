"""The alert engine on the real broker and ClickHouse: rules fire and resolve from the rollups,
each transition is published once on the events exchange, idle APIs fire no-traffic, and with
two management apps only the lease holder evaluates, the other taking over when it stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import msgspec
import pytest
from aio_pika.abc import AbstractRobustConnection

from infra.clickhouse import create_async_client
from management_api.keys import ALERT_ENGINE
from schemas.alerts import ALERT_TRANSITION_KEY
from tests.integration.metrics_support import make_events, store_events
from tests.management_support import Api, MakeApi
from tests.services import close_connections_named

pytestmark = pytest.mark.integration

INTERVAL_S = 0.2


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def store(api: Api, api_id: str, count: int, status_code: int) -> None:
    events = [
        msgspec.structs.replace(e, status_code=status_code)
        for e in make_events(
            count, [api_id], start=datetime.now(UTC) - timedelta(seconds=1), span_s=1.0
        )
    ]
    client = await create_async_client(
        api.settings.clickhouse_url, api.settings.clickhouse_database
    )
    try:
        await store_events(client, api.settings.clickhouse_database, events)
    finally:
        await client.close()


async def exported(api: Api, owner: dict[str, str], model_id: str, name: str) -> str:
    return str((await api.export(owner, model_id, name=name))["api"]["id"])


async def active(api: Api, who: dict[str, str]) -> list[dict[str, Any]]:
    status, body = await api.call("GET", "/api/alerts/active", who)
    assert status == 200, body
    return list(body["items"])


async def test_5xx_fires_and_resolves_published_once_and_idle_api_gets_no_traffic(
    make_api: MakeApi, amqp: AbstractRobustConnection, namespace: str
) -> None:
    api = await make_api(management_alert_evaluation_s=INTERVAL_S)
    channel = await amqp.channel()
    events = await channel.get_exchange(f"{namespace}.events")
    received = await channel.declare_queue("", exclusive=True)
    await received.bind(events, routing_key=ALERT_TRANSITION_KEY)

    owner = await api.new_user("oncall")
    stranger = await api.new_user("stranger")
    job = await api.train_builtin(owner, "iris")
    busy = await exported(api, owner, job["model_id"], "busy")
    idle = await exported(api, owner, job["model_id"], "idle")

    status, rules = await api.call("GET", f"/api/exports/{busy}/alert-rules", owner)
    assert status == 200, rules
    assert {r["kind"] for r in rules["items"]} == {
        "error_rate_5xx",
        "p95_ms",
        "cpu_percent",
        "memory_mb",
    }
    assert (await api.call("GET", f"/api/exports/{busy}/alert-rules", stranger))[0] == 404
    bad = {"rules": [{"kind": "error_rate_5xx", "threshold": 2}]}
    assert (await api.call("PUT", f"/api/exports/{busy}/alert-rules", owner, json=bad))[0] == 400

    five = {"kind": "error_rate_5xx", "threshold": 0.2, "window_s": 60, "min_requests": 5}
    status, rules = await api.call(
        "PUT", f"/api/exports/{busy}/alert-rules", owner, json={"rules": [five]}
    )
    assert status == 200 and len(rules["items"]) == 1, rules
    rule_id = rules["items"][0]["id"]
    quiet = {"kind": "no_traffic", "threshold": 0, "window_s": 60}
    status, idle_rules = await api.call(
        "PUT", f"/api/exports/{idle}/alert-rules", owner, json={"rules": [quiet]}
    )
    assert status == 200, idle_rules
    idle_rule = idle_rules["items"][0]["id"]
    # A silenced rule still changes state and history, but is not published.
    muted = await exported(api, owner, job["model_id"], "muted")
    off = {**quiet, "enabled": False}
    _, muted_rules = await api.call(
        "PUT", f"/api/exports/{muted}/alert-rules", owner, json={"rules": [off]}
    )
    muted_rule = muted_rules["items"][0]["id"]
    status, silenced = await api.call(
        "POST", f"/api/alerts/{muted_rule}/silence", owner, json={"duration_s": 3600}
    )
    assert status == 200 and silenced["silenced_until"] is not None, silenced
    bad_silence = {"duration_s": "1h"}
    assert (await api.call("POST", f"/api/alerts/{muted_rule}/silence", owner, json=bad_silence))[
        0
    ] == 400
    status, _ = await api.call(
        "PUT",
        f"/api/exports/{muted}/alert-rules",
        owner,
        json={"rules": [{**quiet, "id": muted_rule}]},
    )
    assert status == 200

    async def states() -> dict[str, str]:
        return {a["rule"]["id"]: a["state"] for a in await active(api, owner)}

    # The idle API has no row at all in the rollups: no traffic fires.
    await wait_until(lambda: _has(states, idle_rule, "firing"), "no_traffic firing")
    await wait_until(lambda: _has(states, muted_rule, "firing"), "silenced rule firing")
    _, muted_history = await api.call("GET", f"/api/alerts?api_id={muted}", owner)
    assert [t["silenced"] for t in muted_history["items"]] == [True], muted_history

    limited = await exported(api, owner, job["model_id"], "limited")
    saturation = {"kind": "rate_limit_saturation", "threshold": 0.5, "window_s": 60}
    _, limited_rules = await api.call(
        "PUT",
        f"/api/exports/{limited}/alert-rules",
        owner,
        json={"rules": [{**saturation, "min_requests": 5}]},
    )
    limited_rule = limited_rules["items"][0]["id"]
    await store(api, limited, 10, 429)
    await wait_until(lambda: _has(states, limited_rule, "firing"), "rate-limit rule firing")

    await store(api, busy, 40, 500)
    await wait_until(lambda: _has(states, rule_id, "firing"), "5xx rule firing")
    status, body = await api.call("GET", f"/api/exports/{busy}", owner)
    assert body["health"] == "error", body
    assert await active(api, stranger) == []
    status, acked = await api.call("POST", f"/api/alerts/{rule_id}/ack", owner)
    assert status == 200 and acked["acked_by"] == "oncall", acked
    assert (await api.call("POST", f"/api/alerts/{rule_id}/ack", stranger))[0] == 404

    await store(api, busy, 400, 200)  # 40 / 440 < 0.2: the condition ends
    await wait_until(lambda: _not_active(states, rule_id), "5xx rule resolved")
    status, body = await api.call("GET", f"/api/exports/{busy}", owner)
    assert body["health"] == "ok", body

    status, history = await api.call("GET", f"/api/alerts?api_id={busy}", owner)
    assert status == 200, history
    assert [(t["from_state"], t["to_state"]) for t in reversed(history["items"])] == [
        ("ok", "firing"),
        ("firing", "resolved"),
    ]
    assert (await api.call("GET", "/api/alerts", stranger))[1]["items"] == []

    stored = {t["transition_id"] for t in history["items"]}

    async def published() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while (message := await received.get(no_ack=True, fail=False)) is not None:
            seen.append(json.loads(message.body))
        return seen

    messages: list[dict[str, Any]] = []

    async def all_published() -> bool:
        messages.extend(await published())
        return stored <= {m["transition_id"] for m in messages}

    await wait_until(all_published, "both transitions published")
    await asyncio.sleep(INTERVAL_S * 3)  # a few more cycles: nothing published again
    messages.extend(await published())
    ids = [m["transition_id"] for m in messages if m["rule_id"] == rule_id]
    assert sorted(ids) == sorted(stored), messages
    assert idle_rule in {m["rule_id"] for m in messages}
    assert muted_rule not in {m["rule_id"] for m in messages}
    await channel.close()


async def _has(states: Callable[[], Awaitable[dict[str, str]]], rule: str, state: str) -> bool:
    return (await states()).get(rule) == state


async def _not_active(states: Callable[[], Awaitable[dict[str, str]]], rule: str) -> bool:
    return rule not in await states()


async def test_only_the_lease_holder_evaluates_and_another_takes_over(
    make_api: MakeApi,
) -> None:
    apps = [
        await make_api(management_alert_evaluation_s=INTERVAL_S, management_id=f"alerts-{i}")
        for i in range(3)
    ]
    engines = [a.client.server.app[ALERT_ENGINE] for a in apps]

    async def evaluating(among: list[int]) -> list[int]:
        """The app of ``among`` whose cycles grow over ten intervals (empty: none)."""
        before = [engines[i].cycles for i in among]
        await asyncio.sleep(INTERVAL_S * 10)
        grew = [i for i, b in zip(among, before, strict=True) if engines[i].cycles > b]
        assert len(grew) <= 1, f"several apps evaluate at once: {grew}"
        return grew

    everyone = [0, 1, 2]
    (holder,) = await wait_until(lambda: evaluating(everyone), "one app evaluating")
    # The broker drops the holder's connection: it stops, another one takes over (the holder's
    # connection comes back, its consumer waits behind the new active one).
    assert await asyncio.to_thread(close_connections_named, f"alerts-{holder}") == 1
    rest = [i for i in everyone if i != holder]
    (second,) = await wait_until(lambda: evaluating(rest), "another app taking the lease over")
    assert await evaluating([holder]) == [], "an app without broker still evaluates"
    # The new holder stops altogether: the last one takes over.
    await apps[second].client.close()
    last = [i for i in rest if i != second]
    assert await wait_until(lambda: evaluating(last), "the last app taking over") == last


@pytest.fixture(autouse=True)
async def _drop_lease_queue(amqp: AbstractRobustConnection, namespace: str) -> Any:
    yield
    channel = await amqp.channel()
    try:
        await channel.queue_delete(f"{namespace}.alerts.lease")
    except aio_pika.exceptions.AMQPError:
        pass
    await channel.close()
