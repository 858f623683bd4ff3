# ruff: noqa: F811
"""User B can neither see nor change user A's models, APIs or jobs, on every route of the table."""

from __future__ import annotations

import re

from management_api.routes import ROUTES
from tests.management_support import Api, api, clickhouse_db  # noqa: F401

BODIES = {
    "export_model": {},
    "update_export": {"rate_limit_per_minute": 1, "log_payloads": False},
    "set_export_status": {"status": "inactive"},
    "deploy_version": {"version": 1},
    "update_user": {"role": "admin"},
    "silence_alert": {"duration_s": 60},
    "put_alert_rules": {"rules": []},
    "update_webhook": {"url": "https://example.org/elsewhere"},
}


def test_every_route_with_an_object_id_declares_what_it_owns() -> None:
    """A new route taking an id cannot skip the ownership test below."""
    for route in ROUTES:
        if route.path.startswith("/api/") and re.search(r"\{\w+\}", route.path):
            assert route.owns is not None, f"{route.method} {route.path} does not declare owns="


async def test_user_b_gets_404_for_user_a_objects_on_every_route(api: Api) -> None:
    alice = await api.new_user("alice")
    bob = await api.new_user("bob")
    job = await api.train_builtin(alice, "alice-iris")
    created = await api.export(alice, job["model_id"])
    _, alice_user = await api.call("GET", "/api/users/me", alice)
    _, alice_rules = await api.call(
        "GET", f"/api/exports/{created['api']['id']}/alert-rules", alice
    )
    _, hook = await api.call(
        "POST", "/api/webhooks", alice, json={"name": "ops", "url": "https://example.com/hook"}
    )
    ids = {
        "model": job["model_id"],
        "api": created["api"]["id"],
        "job": job["id"],
        "user": alice_user["id"],
        "alert_rule": alice_rules["items"][0]["id"],
        "webhook": hook["id"],
    }

    failures = []
    checked = 0
    for route in ROUTES:
        if route.owns is None:
            continue
        path = re.sub(r"\{\w+\}", ids[route.owns], route.path)
        kwargs = {"json": BODIES[route.operation_id]} if route.operation_id in BODIES else {}
        status, body = await api.call(route.method, path, bob, **kwargs)
        expected = 403 if route.auth == "admin" else 404
        checked += 1
        if status != expected:
            failures.append(f"{route.method} {route.path}: {status} {body}")
    assert checked == sum(1 for r in ROUTES if r.owns is not None) >= 19
    assert not failures, "\n".join(failures)

    # Nothing of Alice's changed, and none of it shows in Bob's lists.
    status, mine = await api.call("GET", f"/api/exports/{created['api']['id']}", alice)
    assert status == 200 and mine["status"] == "active" and mine["rate_limit_per_minute"] == 100
    assert mine["key_prefix"] == created["api"]["key_prefix"] and mine["log_payloads"] is True
    status, model = await api.call("GET", f"/api/models/{job['model_id']}", alice)
    assert status == 200 and model["latest_version"] == 1
    for path in ("/api/models", "/api/exports", "/api/monitoring/apis"):
        status, body = await api.call("GET", path, bob)
        assert status == 200 and body["items"] == [], path
    status, overview = await api.call("GET", "/api/monitoring/overview", bob)
    assert status == 200 and overview["total_apis"] == 0

    # Admins see everyone's objects.
    admin = await api.admin()
    status, _ = await api.call("GET", f"/api/exports/{created['api']['id']}", admin)
    assert status == 200
