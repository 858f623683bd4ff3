# ruff: noqa: F811
"""Recent ranges and markers (issue 12) against the embedded ClickHouse: the 15-minute range
counts the last minutes' requests in 10-second buckets from the raw events (zeros where idle,
shadow answers and unauthenticated rejections left out of the requests), per version too; a deploy,
a key rotation and a status change appear as markers; the overview has the same series over all
of the caller's APIs."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from msgspec.structs import replace

from infra.clickhouse import create_async_client
from schemas.messages import RequestEvent
from tests.integration.metrics_support import make_events, store_events
from tests.management_support import Api, api, clickhouse_db  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def recent(api_id: str, version_key: str, seed: int) -> list[RequestEvent]:
    """60 requests over 40 s ending 2 minutes ago, 20 over 20 s ending now (a gap between)."""
    now = datetime.now(UTC)
    events = make_events(60, [api_id], start=now - timedelta(seconds=160), span_s=40, seed=seed)
    events += make_events(20, [api_id], start=now - timedelta(seconds=20), span_s=20, seed=seed + 1)
    return [replace(e, version_key=version_key) for e in events]


async def store(api: Api, events: Sequence[RequestEvent]) -> None:
    client = await create_async_client(api.settings.clickhouse_url)
    try:
        await store_events(client, api.settings.clickhouse_database, events)
    finally:
        await client.close()


async def series(api: Api, path: str, headers: dict[str, str]) -> dict[str, Any]:
    status, body = await api.call("GET", path, headers)
    assert status == 200, body
    return dict(body)


async def test_the_15_minute_range_shows_the_last_minutes_with_markers(api: Api) -> None:
    owner = await api.new_user("live-owner")
    other = await api.new_user("live-other")
    job = await api.train_builtin(owner, "live-iris")
    await api.train_builtin(owner, "live-iris")  # version 2 of the same model
    created = await api.export(owner, job["model_id"], name="live", version=1)
    api_id, v1 = created["api"]["id"], created["api"]["model_version_id"]
    quiet = await api.export(owner, job["model_id"], name="quiet", version=1)

    served = recent(api_id, v1, seed=21)
    shadows = [
        replace(e, event_id=f"{e.event_id}-s", shadow=True, shadow_of=e.event_id, total_ms=9e3)
        for e in served
    ]
    strangers = [  # rejected before authentication: anyone's to send, counted apart
        replace(
            e,
            event_id=f"{e.event_id}-u",
            status_code=401,
            error_code="INVALID_API_KEY",
            authenticated=False,
        )
        for e in served[:5]
    ]
    await store(api, [*served, *shadows, *strangers, *recent(quiet["api"]["id"], v1, seed=40)])

    url = f"/api/monitoring/apis/{api_id}/timeseries"
    body = await series(api, f"{url}?range=15m&by=version", owner)
    points = body["points"]
    assert body["bucket"] == "10s" and body["step_seconds"] == 10 and len(points) == 90
    stamps = [datetime.fromisoformat(p["ts"]) for p in points]
    assert all((b - a) == timedelta(seconds=10) for a, b in itertools.pairwise(stamps))
    busy = [p for p in points if p["requests"]]
    assert len(busy) >= 5, busy  # several points, not one bar at the right edge
    assert len(points) - len(busy) >= 70  # the idle buckets are there, with zeros
    assert sum(p["requests"] for p in points) == 80  # shadows and strangers left out
    assert sum(p["rejected_unauthenticated"] for p in points) == 5
    assert all(p["p99_ms"] < 9e3 for p in points)  # no shadow latency either
    assert sum(p["errors_4xx"] + p["errors_5xx"] + p["successes"] for p in points) == 80
    assert all(abs(p["requests_per_s"] - p["requests"] / 10) < 1e-9 for p in points)
    split = [
        (s["version_number"], sum(p["requests"] for p in s["points"])) for s in body["by_version"]
    ]
    assert split == [(1, 80)]

    # The same requests in the other short ranges (30 s raw buckets, 5 min from the rollup).
    hour = await series(api, f"{url}?range=1h", owner)
    six = await series(api, f"{url}?range=6h", owner)
    assert (hour["bucket"], len(hour["points"]), six["bucket"], len(six["points"])) == (
        "30s",
        120,
        "5m",
        72,
    )
    assert sum(p["requests"] for p in hour["points"]) == 80
    assert sum(p["requests"] for p in six["points"]) == 80
    stats = await series(api, f"/api/monitoring/apis/{api_id}/stats?range=15m", owner)
    assert stats["requests_in_range"] == 80

    # Changes become markers: a deploy of version 2, a key rotation, a deactivation.
    status, deployed = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 2}
    )
    assert status == 200, deployed
    status, _ = await api.call("POST", f"/api/exports/{api_id}/regenerate-key", owner)
    assert status == 200
    status, _ = await api.call(
        "PUT", f"/api/exports/{api_id}/status", owner, json={"status": "inactive"}
    )
    assert status == 200
    markers: list[dict[str, Any]] = []
    for _ in range(100):  # stored in the background: at most a few moments later
        markers = (await series(api, f"{url}?range=15m", owner))["markers"]
        if len(markers) >= 4:
            break
        await asyncio.sleep(0.05)
    kinds = [(m["kind"], m["version_number"], m["detail"]) for m in markers]
    assert kinds == [
        ("created", 1, ""),
        ("deploy", 2, ""),
        ("key_rotated", 2, ""),
        ("status", 2, "inactive"),
    ], kinds
    assert all(stamps[0] <= datetime.fromisoformat(m["ts"]) for m in markers)
    assert {m["actor"] for m in markers} == {"live-owner"}  # who made each change
    quiet_markers = await series(
        api, f"/api/monitoring/apis/{quiet['api']['id']}/timeseries?range=15m", owner
    )
    assert [m["kind"] for m in quiet_markers["markers"]] == ["created"]

    # The overview: the same buckets over all of the caller's APIs; nobody else sees them.
    overview = await series(api, "/api/monitoring/overview/timeseries?range=15m", owner)
    assert overview["bucket"] == "10s" and len(overview["points"]) == 90
    assert sum(p["requests"] for p in overview["points"]) == 160
    day = await series(api, "/api/monitoring/overview/timeseries?range=24h", owner)
    assert day["bucket"] == "15m" and sum(p["requests"] for p in day["points"]) == 160
    nobody = await series(api, "/api/monitoring/overview/timeseries?range=15m", other)
    assert len(nobody["points"]) == 90 and not any(p["requests"] for p in nobody["points"])
    status, refused = await api.call("GET", f"{url}?range=15m", other)
    assert status == 404, refused
    for query in ("range=2h", "range=30d&bucket=10s", "range=15m&bucket=1s"):
        status, refused = await api.call("GET", f"{url}?{query}", owner)
        assert status == 400, (query, refused)
        status, refused = await api.call(
            "GET", f"/api/monitoring/overview/timeseries?{query}", owner
        )
        assert status == 400, (query, refused)
