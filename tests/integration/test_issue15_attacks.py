# ruff: noqa: F811
"""Issue 15's management inputs under attack: feedback is sent by whoever holds an API key, so
``include_feedback`` must not let it change what the retrained version is (its classes, its
feature types); drift's query parameters at their extremes answer clear 4xx errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import skops.io as sio

from infra.clickhouse import create_async_client
from management_api.retrain import (
    MAX_FEEDBACK_CELLS,
    feedback_limits,
    feedback_rows_sql,
    fitting_rows,
)
from schemas import FeatureSpec, FeatureType, Task
from tests.integration.test_upload_reference import with_reference
from tests.management_support import Api, api, clickhouse_db  # noqa: F401
from tests.unit.test_model_store import upload_pipeline

IRIS = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


async def trained_iris_api(api: Api, owner: dict[str, str]) -> tuple[dict[str, Any], str]:
    status, job = await api.call(
        "POST",
        "/api/models/train",
        owner,
        json={
            "name": "flowers",
            "dataset": "iris",
            "algorithm": "random_forest",
            "params": {"n_estimators": 7, "max_depth": 3},
            "test_size": 0.3,
        },
    )
    assert status == 202, job
    v1 = await api.wait_job(owner, job["id"])
    assert v1["status"] == "succeeded", v1
    created = await api.export(owner, v1["model_id"])
    return v1, str(created["api"]["id"])


async def store_feedback(api: Api, api_id: str, pairs: list[tuple[dict[str, Any], str]]) -> None:
    """Logged requests with these inputs, answered, and one feedback report each."""
    settings = api.settings
    db = settings.clickhouse_database
    client = await create_async_client(settings.clickhouse_url, db)
    now = datetime.now(UTC)
    try:
        await client.insert(
            f"{db}.request_events",
            [
                [f"req-{i}", now, api_id, 200, orjson.dumps(row).decode()]
                for i, (row, _) in enumerate(pairs)
            ],
            column_names=["event_id", "ts", "api_id", "status_code", "input"],
        )
        await client.insert(
            f"{db}.feedback",
            [[api_id, f"req-{i}", actual, now] for i, (_, actual) in enumerate(pairs)],
            column_names=["api_id", "request_id", "actual", "received_at"],
        )
    finally:
        await client.close()


def flower(i: int, **changes: Any) -> dict[str, Any]:
    return {
        "sepal_length_cm": 5.0 + i / 10,
        "sepal_width_cm": 3.0,
        "petal_length_cm": 1.4,
        "petal_width_cm": 0.2,
        **changes,
    }


async def test_feedback_with_labels_outside_the_classes_does_not_change_the_retrained_classes(
    api: Api,
) -> None:
    """A key holder's feedback with made-up labels or wrongly typed inputs is left out of the
    retraining rows: the next version keeps the served version's classes; feedback of which no
    row fits is refused with 409 NO_FEEDBACK, nothing queued."""
    alice = await api.new_user("attack15-alice")
    v1, api_id = await trained_iris_api(api, alice)
    poison = [(flower(i), "pwned") for i in range(10)]
    await store_feedback(api, api_id, poison)
    status, body = await api.call(
        "POST", f"/api/exports/{api_id}/retrain", alice, json={"include_feedback": True}
    )
    assert status == 409 and body["error"]["code"] == "NO_FEEDBACK", body
    assert body["error"]["details"]["joined"] == 10

    good = [(flower(i), "setosa") for i in range(10, 15)]
    mistyped = [(flower(i, sepal_width_cm="wide"), "setosa") for i in range(15, 18)]
    missing = [({"sepal_length_cm": 5.0}, "setosa")]
    await store_feedback(api, api_id, poison + good + mistyped + missing)
    status, job = await api.call(
        "POST", f"/api/exports/{api_id}/retrain", alice, json={"include_feedback": True}
    )
    assert status == 202, job
    done = await api.wait_job(alice, job["id"])
    assert done["status"] == "succeeded", done
    status, model = await api.call("GET", f"/api/models/{v1['model_id']}", alice)
    assert status == 200, model
    first, second = model["versions"]
    assert second["classes"] == first["classes"] == ["setosa", "versicolor", "virginica"]
    # Only the five fitting rows joined the 150 of the dataset.
    assert second["n_train"] + second["n_test"] == 155, second


async def test_feedback_on_padded_inputs_is_not_pulled_into_the_management_api(api: Api) -> None:
    """Ingress logs bodies of up to a megabyte: a single object padded with other keys is not
    read for retraining (100k of them would be 100 GB in the management API's memory)."""
    alice = await api.new_user("attack15-padded-alice")
    _, api_id = await trained_iris_api(api, alice)
    await store_feedback(api, api_id, [(flower(1, junk="x" * 20_000), "setosa")])
    status, body = await api.call(
        "POST", f"/api/exports/{api_id}/retrain", alice, json={"include_feedback": True}
    )
    assert status == 409 and body["error"]["code"] == "NO_FEEDBACK", body


def test_feedback_rows_are_bounded_by_values_not_only_rows() -> None:
    """64 features (digits) times 100k rows would hold 6.5M values as dicts: the rows read are
    bounded by values too; a wide single object of the features still fits the input bound."""
    for features in (4, 30, 64, 1000):
        rows, max_input = feedback_limits(features, 1_000_000)
        assert 1 <= rows and rows * (features + 1) <= MAX_FEEDBACK_CELLS
        wide = orjson.dumps({f"feature_{i:04d}": -123.456789012345 for i in range(features)})
        assert len(wide) <= max_input
    assert feedback_limits(4, 50)[0] == 50


def test_fitting_rows_keep_only_values_of_the_version_types() -> None:
    specs = [
        FeatureSpec(name="n", type=FeatureType.INTEGER),
        FeatureSpec(name="x", type=FeatureType.NUMBER, required=False),
        FeatureSpec(name="b", type=FeatureType.BOOLEAN),
        FeatureSpec(name="c", type=FeatureType.CATEGORY, categories=["red", "blue"]),
    ]
    base = {"n": 3, "x": "2.5", "b": "yes", "c": "red", "target": "a"}
    rows = [
        base,
        {**base, "n": 3.5},
        {**base, "n": True},
        {**base, "x": "inf"},
        {**base, "b": "maybe"},
        {**base, "c": "green"},
        {k: v for k, v in base.items() if k != "n"},
        {k: v for k, v in base.items() if k != "x"},
        {**base, "target": "z"},
    ]
    kept = fitting_rows(rows, specs, "target", Task.CLASSIFICATION, ["a", "b"])
    assert kept == [base, {k: v for k, v in base.items() if k != "x"}]
    numbers = [{"n": 1, "b": "no", "c": "blue", "target": t} for t in ("1.5", "nan", "x", None)]
    assert [r["target"] for r in fitting_rows(numbers, specs, "target", Task.REGRESSION, None)] == [
        "1.5"
    ]


async def test_drift_parameters_at_their_extremes_are_clear_errors(api: Api) -> None:
    """Unknown ranges, version 0, a version past any number and another user's API: 400 or
    404 with the JSON error shape, never a 500."""
    alice = await api.new_user("attack15-drift-alice")
    bob = await api.new_user("attack15-drift-bob")
    _, api_id = await trained_iris_api(api, alice)
    for query, expected in (
        ("range=10y", 400),
        ("range=-1h", 400),
        ("version=0", 400),
        ("version=-3", 400),
        ("version=abc", 400),
        ("version=99999999999999999999999", 404),
        ("version=2", 404),
    ):
        status, body = await api.call("GET", f"/api/exports/{api_id}/drift?{query}", alice)
        assert status == expected, (query, body)
        assert isinstance(body["error"]["code"], str), body
    for path in ("drift", "performance?range=24h"):
        status, body = await api.call("GET", f"/api/exports/{api_id}/{path}", bob)
        assert status == 404 and body["error"]["code"] == "NOT_FOUND", (path, body)
    status, body = await api.call("GET", f"/api/exports/{api_id}/performance?range=10y", alice)
    assert status == 400, body


def test_the_feedback_join_reads_at_most_limit_logged_inputs() -> None:
    """The logged inputs are the join's in-memory side: they are limited before the join (one per
    event), not aggregated in full with only the joined result limited."""
    sql = feedback_rows_sql("modelgate_x")
    inputs = sql[sql.index("INNER JOIN") :]
    assert "LIMIT 1 BY event_id" in inputs and "{limit:UInt32}" in inputs.split(") AS e")[0]
    assert "GROUP BY event_id" not in sql


async def test_odd_reference_csvs_are_profiled_or_refused_with_400_never_500(api: Api) -> None:
    """BOM, NUL bytes, formula-like cells, NaN and inf, an empty body, a header only, one
    enormous line: a 201 with a finite profile or a 400 naming the reference field."""
    owner = await api.new_user("attack15-reference")
    model = sio.dumps(upload_pipeline())
    ok = "size,color,rest\n" + "".join(
        f"{i / 10},{'red' if i % 2 else 'blue'},0.5\n" for i in range(40)
    )
    cases: list[tuple[bytes, int]] = [
        (b"\xef\xbb\xbf" + ok.encode(), 201),
        (ok.replace("0.5\n", "=cmd|' /C calc'!A0\n", 1).encode(), 400),
        (ok.replace("blue", '=HYPERLINK("x")', 1).encode(), 400),
        (ok.replace("0.5", "nan").encode(), 400),  # a required feature missing everywhere
        (ok.replace("0.5\n", "nan\n", 3).encode(), 201),
        (ok.replace(",0.5\n", ",inf\n").encode(), 400),
        (ok.replace("4.0,", "1e308,").encode(), 201),
        (ok.replace("0.1,", "0\x00.1,").encode(), 400),
        (b"size,color,rest\n", 400),
        (b"size,color,rest\n" + b"1," + b"r" * 2_000_000 + b",0.5\n", 400),
        (b"\n\n\n", 400),
    ]
    for i, (csv, expected) in enumerate(cases):
        status, body = await api.call(
            "POST", "/api/models/upload", owner, data=with_reference(model, csv, f"odd-{i}")
        )
        assert status == expected, (i, body)
        if status == 400:
            assert body["error"]["details"]["field"] == "reference", (i, body)
        else:
            status, profile = await api.call(
                "GET", f"/api/models/{body['id']}/versions/1/reference", owner
            )
            assert status == 200, profile
            assert all(
                math.isfinite(b["share"]) for f in profile["features"] for b in f["bins"] or []
            )
