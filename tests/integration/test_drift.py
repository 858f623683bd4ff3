"""Drift (issue 15) on the real ClickHouse: a trained version's reference profile, the drift of
an API's logged inputs against it, and the ``drift_psi`` alert rule firing and notified.

Events are written straight into ``request_events`` as the metrics consumer writes them
(``store_events``: the consumer's own EventStore), with the logged bodies ingress would keep: the
SQL is what is under test, not the pipeline."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import update

from infra.clickhouse import create_async_client
from management_api import monitoring as monitoring_module
from management_api.accounts import Principal
from management_api.datasets import load_dataset
from management_api.db import ModelVersion
from management_api.drift import (
    build_report,
    dimensions,
    drift_counts,
    max_feature_psi,
    sampling,
)
from management_api.keys import ENGINE, MONITORING
from management_api.monitoring import HEAVY_REPORTS_PER_USER
from management_api.queries import MonitoringQueries
from management_api.reference import build_profile
from schemas import FeatureSpec, FeatureType, Task
from schemas.messages import RequestEvent
from tests.integration.metrics_support import store_events
from tests.integration.test_notifications import Receiver, cleanup, receiver, until
from tests.management_support import Api, MakeApi

pytestmark = pytest.mark.integration
__all__ = ["receiver"]  # the webhook receiver fixture, shared with the notification tests

ROWS = 1_500


def drawn_events(
    api_id: str, version_key: str, shift: dict[str, float], seed: int
) -> list[RequestEvent]:
    """``ROWS`` rows drawn from the iris data (the training distribution), ``shift`` added to
    some features; a third of them sent as ``{"instances": [3 rows]}``, one shadow answer and
    one 4xx that must not count."""
    frame, target, _ = load_dataset("iris")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(frame), ROWS)
    rows = [{k: float(v) + shift.get(k, 0.0) for k, v in frame.iloc[int(i)].items()} for i in picks]
    labels = [str(target.iloc[int(i)]) for i in picks]
    start = datetime.now(UTC) - timedelta(seconds=60)
    events: list[RequestEvent] = []
    i = 0
    while i < ROWS:
        many = i % 9 == 0 and i + 3 <= ROWS
        body = {"instances": rows[i : i + 3]} if many else rows[i]
        events.append(
            RequestEvent(
                event_id=uuid.uuid4().hex,
                ts=start + timedelta(milliseconds=i * 20),
                api_id=api_id,
                version_key=version_key,
                status_code=200,
                rows=3 if many else 1,
                prediction=labels[i],
                input=orjson.dumps(body).decode(),
                authenticated=True,
            )
        )
        i += 3 if many else 1
    far = orjson.dumps({name: 1e6 for name in frame.columns}).decode()
    for extra in ({"shadow": True}, {"status_code": 400}):
        fields: dict[str, Any] = {"status_code": 200, **extra}
        events.append(
            RequestEvent(
                event_id=uuid.uuid4().hex,
                ts=start,
                api_id=api_id,
                version_key=version_key,
                input=far,
                prediction="setosa",
                authenticated=True,
                **fields,
            )
        )
    return events


async def store(api: Api, events: list[RequestEvent]) -> None:
    client = await create_async_client(
        api.settings.clickhouse_url, api.settings.clickhouse_database
    )
    try:
        await store_events(client, api.settings.clickhouse_database, events)
    finally:
        await client.close()


async def test_drift_of_a_shifted_feature_its_alert_and_the_errors(
    make_api: MakeApi,
    amqp: AbstractRobustConnection,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(monitoring_module, "HEAVY_REPORT_WAIT_S", 0.2)
    api = await make_api(management_alert_evaluation_s=0.2, management_webhook_allow_private=True)
    try:
        await _scenario(api, receiver)
    finally:
        await cleanup(api, amqp)


async def _scenario(api: Api, receiver: Receiver) -> None:
    owner = await api.new_user("watcher")
    stranger = await api.new_user("stranger")
    job = await api.train_builtin(owner, "iris")
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]

    status, reference = await api.call("GET", f"/api/models/{model_id}/versions/1/reference", owner)
    assert status == 200, reference
    assert reference["source"] == "training" and reference["rows"] == 120
    assert [f["type"] for f in reference["features"]] == ["number"] * 4
    for feature in reference["features"]:
        assert 2 <= len(feature["bins"]) <= 10
        assert abs(sum(b["share"] for b in feature["bins"]) - 1) < 1e-3
        assert feature["bins"][0]["lo"] is None and feature["bins"][-1]["hi"] is None
    assert reference["prediction"]["kind"] == "classes"
    path = f"/api/models/{model_id}/versions/1/reference"
    assert (await api.call("GET", path, stranger))[0] == 404
    assert (await api.call("GET", f"/api/models/{model_id}/versions/9/reference", owner))[0] == 404
    assert (await api.call("GET", f"/api/models/{model_id}/versions/x/reference", owner))[0] == 400

    steady = (await api.export(owner, model_id, name="steady"))["api"]
    shifted = (await api.export(owner, model_id, name="shifted"))["api"]
    std = {f["name"]: f["std"] for f in reference["features"]}
    moved = reference["features"][2]["name"]  # petal length
    await store(api, drawn_events(steady["id"], steady["model_version_id"], {}, seed=1))
    await store(
        api,
        drawn_events(shifted["id"], shifted["model_version_id"], {moved: 2 * std[moved]}, seed=2),
    )

    status, calm = await api.call("GET", f"/api/exports/{steady['id']}/drift?range=1h", owner)
    assert status == 200, calm
    assert calm["live_rows"] == ROWS and calm["version"] == 1 and calm["reference_rows"] == 120
    assert all(f["psi"] < 0.1 and f["status"] == "ok" for f in calm["features"]), calm["features"]
    assert calm["prediction"]["psi"] is not None and calm["prediction"]["psi"] < 0.1
    assert sum(p["rows"] for p in calm["features"][0]["series"]) == ROWS
    assert len(calm["features"][0]["series"]) == 12

    status, drift = await api.call("GET", f"/api/exports/{shifted['id']}/drift?range=6h", owner)
    assert status == 200, drift
    first, *others = drift["features"]
    assert first["name"] == moved and first["psi"] > 0.25 and first["status"] == "drift", first
    assert all(f["psi"] < 0.1 for f in others), others
    assert first["js"] > max(f["js"] for f in others)

    # Errors: bad parameters 400, another's or unknown API 404, no reference 409.
    base = f"/api/exports/{steady['id']}/drift"
    for bad in ("?range=2h", "?version=zero", "?version=0", "?sort=psi"):
        status, body = await api.call("GET", base + bad, owner)
        assert status == 400 and body["error"]["code"] in ("INVALID_INPUT", "VALIDATION_ERROR"), (
            body
        )
    assert (await api.call("GET", base, stranger))[0] == 404
    assert (await api.call("GET", "/api/exports/" + "f" * 32 + "/drift", owner))[0] == 404
    assert (await api.call("GET", base + "?version=7", owner))[0] == 404
    async with api.client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(ModelVersion).values(reference=None))
    status, body = await api.call("GET", base, owner)
    assert status == 409 and body["error"]["code"] == "NO_REFERENCE", body
    assert (await api.call("GET", path, owner))[0] == 404
    async with api.client.server.app[ENGINE].begin() as conn:
        await conn.execute(update(ModelVersion).values(reference=reference))

    # A user runs at most HEAVY_REPORTS_PER_USER drift or performance reports at once: with
    # that many in flight the next waits (0.2 s here) and then is a 429 with Retry-After,
    # another user's report still runs, and once one ends the next is admitted.
    monitoring = api.client.server.app[MONITORING]
    me = (await api.call("GET", "/api/users/me", owner))[1]
    holder = Principal(user_id=me["id"], username=me["username"], role=me["role"])
    async with AsyncExitStack() as slots:
        for _ in range(HEAVY_REPORTS_PER_USER):
            await slots.enter_async_context(monitoring.heavy_report(holder))
        for path in (base, f"/api/exports/{steady['id']}/performance"):
            r = await api.client.get(path, headers=owner)
            body = await r.json()
            assert r.status == 429 and body["error"]["code"] == "RATE_LIMITED", body
            assert r.headers["Retry-After"] == "1"
        other = await api.new_user("other-watcher")
        other_model = (await api.train_builtin(other, "iris-other"))["model_id"]
        other_api = (await api.export(other, other_model, name="theirs"))["api"]
        assert (await api.call("GET", f"/api/exports/{other_api['id']}/drift", other))[0] == 200
    assert (await api.call("GET", base, owner))[0] == 200

    # The drift_psi rule fires on the shifted API only, and the owner's webhook hears it.
    status, hook = await api.call(
        "POST", "/api/webhooks", owner, json={"name": "ops", "url": receiver.url("/ok")}
    )
    assert status == 201, hook
    rule = {"kind": "drift_psi", "threshold": 0.25, "window_s": 600, "min_requests": 100}
    for exported in (steady, shifted):
        status, rules = await api.call(
            "PUT", f"/api/exports/{exported['id']}/alert-rules", owner, json={"rules": [rule]}
        )
        assert status == 200, rules
    got = (await until(lambda: receiver.to("/ok"), "the drift alert's webhook POST"))[0]
    payload = orjson.loads(got.body)
    assert payload["rule"]["kind"] == "drift_psi", payload
    assert payload["api"]["id"] == shifted["id"], payload
    status, active = await api.call("GET", "/api/alerts/active", owner)
    assert status == 200, active
    firing = {a["rule"]["api_id"]: a for a in active["items"] if a["rule"]["kind"] == "drift_psi"}
    assert set(firing) == {shifted["id"]}, active
    assert firing[shifted["id"]]["value"] > 0.25


async def test_categories_booleans_and_odd_values_fall_in_their_bins(
    clickhouse_server: str, clickhouse_db: str
) -> None:
    reference = {
        "rows": 10,
        "source": "training",
        "features": [
            {
                "name": "color",
                "type": "category",
                "categories": [{"value": "red", "share": 0.5}, {"value": "blue", "share": 0.5}],
            },
            {
                "name": "flag",
                "type": "boolean",
                "categories": [{"value": "true", "share": 0.5}, {"value": "false", "share": 0.5}],
            },
            {
                "name": "x y",
                "type": "number",
                "bins": [
                    {"lo": None, "hi": 0.0, "share": 0.5},
                    {"lo": 0.0, "hi": None, "share": 0.5},
                ],
            },
        ],
        "prediction": {"kind": "classes", "categories": [{"value": "yes", "share": 1.0}]},
    }
    bodies = [
        {"color": "red", "flag": True, "x y": -1},
        {"color": "green", "flag": "no", "x y": "2"},
        {"instances": [{"color": " blue ", "flag": 1, "x y": None}]},
    ]
    now = datetime.now(UTC)
    events = [
        RequestEvent(
            event_id=uuid.uuid4().hex,
            ts=now - timedelta(seconds=5),
            api_id="cats",
            version_key="v-cats",
            status_code=200,
            prediction=prediction,
            input=orjson.dumps(body).decode(),
            authenticated=True,
        )
        for body, prediction in zip(bodies, ["yes", "no", "yes"], strict=True)
    ]
    client = await create_async_client(clickhouse_server, clickhouse_db)
    try:
        await store_events(client, clickhouse_db, events)
        features, prediction = dimensions(reference)
        end = int(now.timestamp() * 1000) + 1000
        by_feature, by_slot = await drift_counts(
            MonitoringQueries(client, clickhouse_db),
            "cats",
            "v-cats",
            features,
            prediction,
            (end - 60_000, end, 60_000),
        )
    finally:
        await client.close()
    assert by_feature[0] == {0: [3.0]}  # rows
    assert by_feature[1] == {0: [1.0, 1.0, 1.0]}  # red, blue, (other): green
    assert by_feature[2] == {0: [2.0, 1.0, 0.0]}  # true (true, 1), false ("no"), (other)
    assert by_feature[3] == {0: [1.0, 1.0]}  # -1, "2"; null is missing
    assert by_slot == {0: [2.0, 1.0]}  # yes, (other): no


async def test_a_large_window_is_sampled_and_scores_stay_within_tolerance(
    clickhouse_server: str, clickhouse_db: str
) -> None:
    """Above ``max_requests`` answered requests the counts come from a deterministic sample (one
    part in ``modulus`` of the window's time, in slices); ``live_rows`` stays the window's total."""
    rng = np.random.default_rng(7)
    names = ["f0", "f1", "f2"]
    reference = build_profile(
        pd.DataFrame({n: rng.normal(0, 1, 20_000) for n in names}),
        [FeatureSpec(name=n, type=FeatureType.NUMBER) for n in names],
        Task.CLASSIFICATION,
        ["a", "b"] * 50,
    )
    now = datetime.now(UTC)
    requests = 2_000
    events = [
        RequestEvent(
            event_id=uuid.uuid4().hex,
            ts=now - timedelta(milliseconds=1_700 * i + 1000),
            api_id=api_id,
            version_key=api_id + "-v1",
            status_code=200,
            prediction=["a", "b"][i % 2],
            input=orjson.dumps(
                {
                    n: float(v) + (2.0 if shift and n == "f1" else 0.0)
                    for n, v in zip(names, row, strict=True)
                }
            ).decode(),
            authenticated=True,
        )
        for api_id, shift in (("steady-s", False), ("shifted-s", True))
        for i, row in enumerate(rng.normal(0, 1, (requests, len(names))))
    ]
    end = int(now.timestamp() * 1000) + 1
    window = (end - 3_600_000, end, 300_000)
    features, prediction = dimensions(reference)
    client = await create_async_client(clickhouse_server, clickhouse_db)
    try:
        await store_events(client, clickhouse_db, events)
        queries = MonitoringQueries(client, clickhouse_db)
        reports = {}
        for api_id in ("steady-s", "shifted-s"):
            picked = await sampling(queries, api_id, api_id + "-v1", window, max_requests=500)
            assert (picked.requests, picked.rows, picked.modulus) == (requests, requests, 4)
            counts = await drift_counts(
                queries, api_id, api_id + "-v1", features, prediction, window, picked.modulus
            )
            again = await drift_counts(
                queries, api_id, api_id + "-v1", features, prediction, window, picked.modulus
            )
            assert counts == again  # deterministic: the same requests every time
            reports[api_id] = build_report(api_id, 1, "1h", reference, counts, window, picked)
        whole = await sampling(queries, "steady-s", "steady-s-v1", window)
        assert whole.modulus == 1
        full = build_report(
            "steady-s",
            1,
            "1h",
            reference,
            await drift_counts(queries, "steady-s", "steady-s-v1", features, prediction, window),
            window,
            whole,
        )
        alert = await max_feature_psi(
            queries, "shifted-s", "shifted-s-v1", reference, window[0], end, max_requests=500
        )
    finally:
        await client.close()
    steady, shifted = reports["steady-s"], reports["shifted-s"]
    for report in (steady, shifted):
        assert report["live_rows"] == requests
        assert 300 <= report["sampled_rows"] <= 700, report["sampled_rows"]
        assert sum(p["rows"] for p in report["features"][0]["series"]) == report["sampled_rows"]
    assert full["live_rows"] == full["sampled_rows"] == requests
    assert all(f["psi"] < 0.1 for f in steady["features"]), steady["features"]
    first, *others = shifted["features"]
    assert first["name"] == "f1" and first["psi"] > 0.25, first
    assert all(f["psi"] < 0.1 for f in others), others
    # The sample's scores are the full window's within the sampling noise (~bins / rows).
    exact = {f["name"]: f["psi"] for f in full["features"]}
    assert all(abs(f["psi"] - exact[f["name"]]) < 0.05 for f in steady["features"])
    assert alert[1] == "f1" and alert[0] is not None and alert[0] > 0.25 and alert[2] == requests
