"""``modelgate simulate`` (issue 15) against the whole stack ``modelgate up`` runs: the rows it
sends are drawn from the served version's reference profile (read from the management API), every
request it counts lands in ClickHouse, ``--drift F=+2sd`` moves the logged F by about two standard
deviations, and feedback at error rate 0 repeats the predictions."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import clickhouse_connect
import pytest

from modelgate.simulate import Drift, fetch_api, run, target_of
from tests.stack import Stack

pytestmark = pytest.mark.timeout(240)


async def admin_call(
    http: aiohttp.ClientSession, stack: Stack, method: str, path: str, **kwargs: Any
) -> Any:
    async with http.post(
        stack.management_url + "/api/auth/token",
        json={"username": stack.admin_username, "password": stack.admin_password},
    ) as r:
        token = (await r.json())["access_token"]
    async with http.request(
        method, stack.management_url + path, headers={"Authorization": f"Bearer {token}"}, **kwargs
    ) as r:
        body = await r.json(content_type=None)
        assert r.status < 300, (method, path, r.status, body)
        return body


def ch_rows(stack: Stack, sql: str, **parameters: Any) -> list[dict[str, Any]]:
    client = clickhouse_connect.get_client(
        dsn=stack.clickhouse_url, database=stack.clickhouse_database
    )
    try:
        return list(client.query(sql, parameters=parameters).named_results())
    finally:
        client.close()


async def wait_rows(stack: Stack, sql: str, expected: int, **parameters: Any) -> None:
    for _ in range(300):
        found = ch_rows(stack, sql, **parameters)[0]["n"]
        if found >= expected:
            assert found == expected, (sql, found, expected)
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {found} of {expected} rows landed: {sql}\n{stack.log_tail()}")


async def test_simulated_traffic_lands_drifts_and_gets_matching_feedback(stack: Stack) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        job = await admin_call(
            http,
            stack,
            "POST",
            "/api/models/train",
            json={"name": "sim-iris", "dataset": "iris", "algorithm": "logistic_regression"},
        )
        for _ in range(600):
            if job["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
            job = await admin_call(http, stack, "GET", f"/api/training-jobs/{job['id']}")
        assert job["status"] == "succeeded", job
        created = await admin_call(
            http,
            stack,
            "POST",
            f"/api/export/{job['model_id']}",
            json={"name": "sim-iris", "rate_limit_per_minute": 100000},
        )
        api_id, key = created["api"]["id"], created["api_key"]
        # The profile as the command reads it: the real reference route.
        _, profile = await fetch_api(
            http, stack.management_url, stack.admin_username, stack.admin_password, api_id
        )
        petal = next(f for f in profile["features"] if "petal_length" in f["name"])
        target = target_of(stack.ingress_url, api_id, key)
        # Ingress learns of the new API from a control event: wait until it answers.
        body = {f["name"]: f["mean"] for f in profile["features"]}
        status = 0
        for _ in range(100):
            async with http.post(target.predict_url, json=body, headers={"X-API-Key": key}) as r:
                status = r.status
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200

        plain = await run(
            target, profile, rate=30, duration_s=3, seed=1, keep_request_ids=True, session=http
        )
        drifted = await run(
            target,
            profile,
            rate=30,
            duration_s=2,
            drifts=[Drift(petal["name"], 2.0)],
            feedback_error_rate=None,
            seed=2,
            keep_request_ids=True,
            session=http,
        )

    assert plain.sent == 90 and plain.statuses == {200: 90}, plain.render()
    assert plain.feedback_sent == plain.feedback_accepted == 90, plain.render()
    assert drifted.sent == 60 and drifted.statuses == {200: 60}, drifted.render()
    assert drifted.feedback_sent == 0

    # Every request landed (+1: the readiness call), with its input logged.
    await wait_rows(
        stack,
        "SELECT count() AS n FROM request_events WHERE api_id = {api:String} AND input != ''",
        151,
        api=api_id,
    )
    await wait_rows(
        stack, "SELECT count() AS n FROM feedback WHERE api_id = {api:String}", 90, api=api_id
    )
    means = {
        row["run"]: row
        for row in ch_rows(
            stack,
            "SELECT has({drifted:Array(String)}, event_id) AS run, "
            "avg(JSONExtractFloat(input, {f:String})) AS mean, count() AS n "
            "FROM request_events WHERE has({ids:Array(String)}, event_id) GROUP BY run",
            drifted=drifted.request_ids,
            ids=plain.request_ids + drifted.request_ids,
            f=petal["name"],
        )
    }
    assert (means[0]["n"], means[1]["n"]) == (90, 60)
    std = petal["std"]
    assert abs(means[0]["mean"] - petal["mean"]) < 0.4 * std, (means, petal)
    assert abs(means[1]["mean"] - petal["mean"] - 2 * std) < 0.4 * std, (means, petal)
    # Feedback at error rate 0 repeats each answer.
    mismatched = ch_rows(
        stack,
        "SELECT countIf(f.actual != e.prediction) AS bad, count() AS n FROM feedback AS f "
        "INNER JOIN request_events AS e ON e.event_id = f.request_id "
        "WHERE f.api_id = {api:String} AND e.api_id = {api:String}",
        api=api_id,
    )[0]
    assert (mismatched["bad"], mismatched["n"]) == (0, 90), mismatched
