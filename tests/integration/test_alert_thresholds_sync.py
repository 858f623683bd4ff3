"""The thresholds of the API settings dialog are those of the API's rules of the same kinds: a
threshold changed there changes the rule the alert engine evaluates (two places, one figure)."""

from __future__ import annotations

import pytest

from tests.management_support import MakeApi

pytestmark = pytest.mark.integration


async def test_a_threshold_patched_on_the_api_moves_its_rule(make_api: MakeApi) -> None:
    api = await make_api()
    owner = await api.new_user("settings")
    job = await api.train_builtin(owner, "iris")
    api_id = str((await api.export(owner, job["model_id"], name="synced"))["api"]["id"])
    body = {"alert_thresholds": {"p95_ms": 123.0, "error_rate": 0.25}}
    status, updated = await api.call("PATCH", f"/api/exports/{api_id}", owner, json=body)
    assert status == 200, updated
    assert updated["alert_thresholds"]["p95_ms"] == 123.0
    status, rules = await api.call("GET", f"/api/exports/{api_id}/alert-rules", owner)
    assert status == 200, rules
    thresholds = {r["kind"]: r["threshold"] for r in rules["items"]}
    assert thresholds["p95_ms"] == 123.0
    assert thresholds["error_rate_5xx"] == 0.25
    # Untouched kinds keep their default.
    assert thresholds["cpu_percent"] == updated["alert_thresholds"]["cpu_percent"]
