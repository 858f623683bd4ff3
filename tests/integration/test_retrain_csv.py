# ruff: noqa: F811
"""Retrain of a CSV-trained version (issue 15): the version keeps the CSV it was trained on beside
its model in the store (0600, hash in its metadata), and ``POST /api/exports/{id}/retrain`` trains
the next version on those bytes with the same target, dropped columns, algorithm, params and test
share, plus the API's feedback rows when asked. A kept CSV changed on disk is refused; a CSV
version saved before CSVs were kept is refused as before; deleting the model deletes the CSV."""

from __future__ import annotations

import io
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from infra.clickhouse import create_async_client
from infra.model_store import METADATA_FILE, TRAINING_CSV_FILE, TRAINING_CSV_HASH_KEY
from management_api.keys import JOBS
from tests.management_support import Api, api, churn_csv, clickhouse_db  # noqa: F401

ROWS = 200


def churn_with_ids() -> bytes:
    """The churn CSV with a leading ``customer_id`` column, which training drops."""
    frame = pd.read_csv(io.BytesIO(churn_csv(ROWS)))
    frame.insert(0, "customer_id", [f"c-{i:04d}" for i in range(ROWS)])
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


async def train_and_export(api: Api, who: dict[str, str], name: str) -> tuple[dict[str, Any], str]:
    """Train ``name`` v1 from the churn CSV (id column dropped) and export it: (v1, api id)."""
    v1 = await api.train_csv(
        who,
        name,
        churn_with_ids(),
        "churned",
        drop_columns='["customer_id"]',
        params='{"n_estimators": 5, "max_depth": 3}',
        test_size="0.25",
    )
    assert v1["status"] == "succeeded", v1
    created = await api.export(who, v1["model_id"])
    return v1, created["api"]["id"]


async def versions(api: Api, who: dict[str, str], model_id: str) -> list[dict[str, Any]]:
    status, model = await api.call("GET", f"/api/models/{model_id}", who)
    assert status == 200, model
    return list(model["versions"])


def store_dir(api: Api, version_id: str) -> Path:
    return Path(api.settings.model_store) / version_id


async def retrain(api: Api, who: dict[str, str], api_id: str, **body: Any) -> dict[str, Any]:
    status, job = await api.call("POST", f"/api/exports/{api_id}/retrain", who, json=body)
    assert status == 202, job
    done = await api.wait_job(who, job["id"])
    assert done["status"] == "succeeded", done
    status, logs = await api.call("GET", f"/api/training-jobs/{job['id']}/logs", who)
    assert status == 200, logs
    return {**done, "lines": logs["lines"]}


async def add_feedback(api: Api, api_id: str, count: int) -> None:
    """``count`` logged single-object inputs of the API, each with a ``yes`` feedback."""
    settings = api.settings
    client = await create_async_client(settings.clickhouse_url, settings.clickhouse_database)
    try:
        db, now = settings.clickhouse_database, datetime.now(UTC)
        rows = [
            {"age": 60 + i, "monthly_spend": 42.5, "plan": "basic", "has_support": True}
            for i in range(count)
        ]
        await client.insert(
            f"{db}.request_events",
            [
                [f"csv-req-{i}", now, api_id, 200, orjson.dumps(row).decode()]
                for i, row in enumerate(rows)
            ],
            column_names=["event_id", "ts", "api_id", "status_code", "input"],
        )
        await client.insert(
            f"{db}.feedback",
            [[api_id, f"csv-req-{i}", "yes", now] for i in range(count)],
            column_names=["api_id", "request_id", "actual", "received_at"],
        )
    finally:
        await client.close()


async def test_a_csv_version_is_retrained_on_its_kept_csv_with_and_without_feedback(
    api: Api,
) -> None:
    alice = await api.new_user("csv-retrain-alice")
    v1, api_id = await train_and_export(api, alice, "churn")
    (first,) = await versions(api, alice, v1["model_id"])
    kept = store_dir(api, first["id"]) / TRAINING_CSV_FILE
    assert kept.read_bytes() == churn_with_ids()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    done = await retrain(api, alice, api_id)
    assert (done["model_id"], done["version_number"]) == (v1["model_id"], 2), done
    await add_feedback(api, api_id, 12)
    with_feedback = await retrain(api, alice, api_id, include_feedback=True)
    assert with_feedback["version_number"] == 3, with_feedback
    assert any("added 12 feedback rows to the CSV's" in line for line in with_feedback["lines"])

    first, second, third = await versions(api, alice, v1["model_id"])
    names = {f["name"] for f in first["features"]}
    assert names == {"age", "monthly_spend", "plan", "has_support"}
    for later in (second, third):
        assert later["features"] == first["features"]
        assert later["target"] == first["target"] == "churned"
        assert later["algorithm"] == first["algorithm"] == "random_forest"
        assert later["params"] == first["params"]
        assert later["source"] == first["source"] == "csv:data.csv"
        assert later["classes"] == first["classes"]
    # The CSV's 200 rows split 150/50 (test share 0.25), then 212 rows with the feedback.
    assert (first["n_train"], first["n_test"]) == (150, 50)
    assert (second["n_train"], second["n_test"]) == (150, 50)
    assert (third["n_train"], third["n_test"]) == (159, 53)
    # The retrained versions keep the same CSV, so they can be retrained in turn.
    assert (store_dir(api, third["id"]) / TRAINING_CSV_FILE).read_bytes() == churn_with_ids()

    # Deleting the model (once its API is gone) deletes every version's kept CSV.
    status, body = await api.call("DELETE", f"/api/exports/{api_id}", alice)
    assert status in (200, 204), body
    status, body = await api.call("DELETE", f"/api/models/{v1['model_id']}", alice)
    assert status in (200, 204), body
    for version in (first, second, third):
        assert not store_dir(api, version["id"]).exists()


async def test_a_kept_csv_changed_on_disk_is_refused_and_queues_nothing(api: Api) -> None:
    alice = await api.new_user("csv-tamper-alice")
    v1, api_id = await train_and_export(api, alice, "churn")
    (first,) = await versions(api, alice, v1["model_id"])
    kept = store_dir(api, first["id"]) / TRAINING_CSV_FILE
    kept.write_bytes(kept.read_bytes().replace(b",no\n", b",yes\n", 1))
    jobs = api.client.app[JOBS]
    known = set(jobs._jobs)

    status, body = await api.call("POST", f"/api/exports/{api_id}/retrain", alice, json={})
    assert status == 409, body
    assert body["error"]["code"] == "RECIPE_UNAVAILABLE", body
    assert "changed on disk" in body["error"]["message"], body
    assert body["error"]["details"]["csv"] == "changed", body
    assert set(jobs._jobs) == known and not jobs._queue
    assert len(await versions(api, alice, v1["model_id"])) == 1


async def test_a_csv_version_saved_before_csvs_were_kept_is_refused_as_before(api: Api) -> None:
    alice = await api.new_user("csv-old-alice")
    v1, api_id = await train_and_export(api, alice, "churn")
    (first,) = await versions(api, alice, v1["model_id"])
    # What a version saved before this change looks like: no CSV, no hash recorded.
    folder = store_dir(api, first["id"])
    (folder / TRAINING_CSV_FILE).unlink()
    metadata = orjson.loads((folder / METADATA_FILE).read_bytes())
    del metadata[TRAINING_CSV_HASH_KEY]
    (folder / METADATA_FILE).write_bytes(orjson.dumps(metadata))
    jobs = api.client.app[JOBS]
    known = set(jobs._jobs)

    status, body = await api.call("POST", f"/api/exports/{api_id}/retrain", alice, json={})
    assert status == 409, body
    assert body["error"]["code"] == "RECIPE_UNAVAILABLE", body
    assert "was not kept" in body["error"]["message"], body
    assert "train a new version from the CSV" in body["error"]["message"], body
    assert set(jobs._jobs) == known and not jobs._queue
