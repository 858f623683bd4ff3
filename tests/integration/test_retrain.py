# ruff: noqa: F811
"""Retrain (issue 15): ``POST /api/exports/{id}/retrain`` trains the next version of the API's
model on the served version's recipe (built-in dataset, algorithm, params, test share), adds the
API's feedback joined to its logged inputs when asked, and is the owner's or an admin's only.
(Versions it cannot retrain, CSV or uploaded: tests/unit/test_retrain_recipe.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from infra.clickhouse import create_async_client
from tests.management_support import Api, api, clickhouse_db  # noqa: F401

IRIS = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


async def test_retrain_trains_the_next_version_with_the_served_recipe(api: Api) -> None:
    alice = await api.new_user("retrain-alice")
    status, job = await api.call(
        "POST",
        "/api/models/train",
        alice,
        json={
            "name": "flowers",
            "dataset": "iris",
            "algorithm": "random_forest",
            "params": {"n_estimators": 7, "max_depth": 3},
            "test_size": 0.3,
        },
    )
    assert status == 202, job
    v1 = await api.wait_job(alice, job["id"])
    assert v1["status"] == "succeeded", v1
    created = await api.export(alice, v1["model_id"])
    api_id = created["api"]["id"]

    # Another user cannot see it; an admin can, and the version is Alice's (below).
    bob = await api.new_user("retrain-bob")
    status, body = await api.call("POST", f"/api/exports/{api_id}/retrain", bob, json={})
    assert status == 404, body
    await add_feedback_and_retrain_as_admin(api, alice, api_id, v1)


async def add_feedback_and_retrain_as_admin(
    api: Api, alice: dict[str, str], api_id: str, v1: dict[str, Any]
) -> None:
    """The next version has the served one's algorithm, params and test share, and the feedback
    rows joined to logged inputs; an admin may retrain and the version is the owner's."""
    admin = await api.admin()
    settings = api.settings
    client = await create_async_client(settings.clickhouse_url, settings.clickhouse_database)
    try:
        db = settings.clickhouse_database
        status, body = await api.call(
            "POST", f"/api/exports/{api_id}/retrain", alice, json={"include_feedback": True}
        )
        # No feedback yet (or no feedback table on this deployment): refused, nothing queued.
        assert status == 409 and body["error"]["code"] == "NO_FEEDBACK", body

        now = datetime.now(UTC)
        rows = [
            {
                "sepal_length_cm": 5.0 + i / 10,
                "sepal_width_cm": 3.0,
                "petal_length_cm": 1.4,
                "petal_width_cm": 0.2,
            }
            for i in range(20)
        ]
        await client.insert(
            f"{db}.request_events",
            [
                [f"req-{i}", now, api_id, 200, orjson.dumps(row).decode()]
                for i, row in enumerate(rows)
            ]
            # A batch request and a refused one: neither becomes a training row.
            + [
                ["req-batch", now, api_id, 200, orjson.dumps({"instances": rows[:2]}).decode()],
                ["req-400", now, api_id, 400, orjson.dumps(rows[0]).decode()],
            ],
            column_names=["event_id", "ts", "api_id", "status_code", "input"],
        )
        feedback = [[api_id, f"req-{i}", "setosa", now] for i in range(20)]
        feedback += [[api_id, "req-batch", "setosa", now], [api_id, "req-400", "setosa", now]]
        feedback += [[api_id, "unknown-request", "setosa", now]]
        await client.insert(
            f"{db}.feedback",
            feedback,
            column_names=["api_id", "request_id", "actual", "received_at"],
        )
    finally:
        await client.close()

    status, job = await api.call(
        "POST", f"/api/exports/{api_id}/retrain", admin, json={"include_feedback": True}
    )
    assert status == 202, job
    done = await api.wait_job(admin, job["id"])
    assert (done["status"], done["model_id"], done["version_number"]) == (
        "succeeded",
        v1["model_id"],
        2,
    ), done
    status, model = await api.call("GET", f"/api/models/{v1['model_id']}", alice)
    assert status == 200
    first, second = model["versions"]
    assert (first["n_train"], first["n_test"]) == (105, 45)
    assert second["algorithm"] == first["algorithm"] == "random_forest"
    assert second["params"] == first["params"]
    assert second["source"] == "builtin:iris"
    # The 20 joined rows (not the batch, the refused or the unknown request) and a 0.3 test share.
    assert (second["n_train"], second["n_test"]) == (119, 51)
    status, logs = await api.call("GET", f"/api/training-jobs/{job['id']}/logs", alice)
    assert any("added 20 feedback rows" in line for line in logs["lines"]), logs
    # Retraining does not deploy: the API still serves version 1.
    status, served = await api.call("GET", f"/api/exports/{api_id}", alice)
    assert served["version_number"] == 1
