# ruff: noqa: F811
"""Bring your own model (issue 11): ``POST /api/models/upload/inspect`` reads what a .skops file
says about itself (feature names, an encoder's categories, classes, task) to pre-fill the upload
form, checked exactly like an upload (same refusals, nothing stored, its code never run); the
user's edited schema is then uploaded and the model predicts through the predictor's engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from aiohttp import FormData
from sklearn.linear_model import Ridge

from infra.model_store import MODEL_FILE, ModelStore
from predictor.engine import BatchPredictor, ModelCache
from tests.management_support import Api, api, clickhouse_db, make_api  # noqa: F401
from tests.unit.test_model_store import crafted_runstring_file, upload_pipeline, zip_bomb

INSPECT = "/api/models/upload/inspect"


def file_form(data: bytes) -> FormData:
    form = FormData()
    form.add_field("file", data, filename="model.skops")
    return form


def upload_form(data: bytes, name: str, task: str, features: Any, classes: Any = None) -> FormData:
    form = file_form(data)
    form.add_field("name", name)
    form.add_field("task", task)
    form.add_field("features", json.dumps(features))
    if classes is not None:
        form.add_field("classes", json.dumps(classes))
    return form


def stored_files(api: Api) -> list[Path]:
    return [p for p in api.settings.model_store.rglob(MODEL_FILE)]


async def test_inspect_proposes_the_features_categories_classes_and_task_of_a_pipeline(
    api: Api,
) -> None:
    """A pipeline fitted on a DataFrame: names from ``feature_names_in_``, ``color`` categorical
    with the one-hot encoder's categories, classes from ``classes_``; nothing is stored."""
    owner = await api.new_user("inspector")
    status, body = await api.call(
        "POST", INSPECT, owner, data=file_form(sio.dumps(upload_pipeline()))
    )
    assert status == 200, body
    assert body["algorithm"] == "Pipeline"
    assert body["task"] == "classification"
    assert body["classes"] == ["0", "1"]
    assert body["feature_names_found"] is True
    assert body["n_features_in"] == 3
    assert body["has_predict_proba"] is True
    assert [(f["name"], f["type"], f.get("categories")) for f in body["features"]] == [
        ("size", "number", None),
        ("color", "category", ["blue", "red"]),
        ("rest", "number", None),
    ]
    status, models = await api.call("GET", "/api/models", owner)
    assert models["items"] == []
    assert stored_files(api) == []


async def test_unnamed_features_get_placeholders_then_upload_edited_and_predict(
    api: Api,
) -> None:
    """A regressor fitted on a bare array: placeholders x0..x2 and task regression are proposed;
    the user renames them, uploads, and the stored version predicts from rows of those names
    the way a predictor runs it."""
    owner = await api.new_user("byo")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    model = Ridge().fit(x, x @ np.array([1.0, 2.0, -1.0]) + 0.5)
    data = sio.dumps(model)
    status, body = await api.call("POST", INSPECT, owner, data=file_form(data))
    assert status == 200, body
    assert body["task"] == "regression"
    assert body["classes"] is None
    assert body["feature_names_found"] is False
    assert [f["name"] for f in body["features"]] == ["x0", "x1", "x2"]

    edited = [
        {"name": new, "type": "number"} for new in ("rooms", "area", "age")
    ]  # what the form sends after the user renamed the placeholders
    status, created = await api.call(
        "POST", "/api/models/upload", owner, data=upload_form(data, "house", "regression", edited)
    )
    assert status == 201, created
    version = created["versions"][0]
    assert [f["name"] for f in version["features"]] == ["rooms", "area", "age"]
    assert version["algorithm"] == "Ridge"

    engine = BatchPredictor(ModelCache(ModelStore(api.settings.model_store), capacity=2))
    outcome = engine.run(version["id"], ["rooms", "area", "age"], [[1.0, 1.0, 1.0]], False)
    assert outcome.error_code is None, outcome
    assert outcome.results[0].prediction == float(model.predict(np.array([[1.0, 1.0, 1.0]]))[0])


async def test_inspect_refuses_a_crafted_or_oversized_file_exactly_like_upload(
    api: Api, tmp_path: Path
) -> None:
    """The file that would run code gets the same 400 UNTRUSTED_MODEL from inspect as from
    upload (the code never runs); the zip bomb the same 413 MODEL_ARCHIVE_TOO_LARGE; a file that
    is not a zip the same 400 INVALID_MODEL_FILE. Nothing is stored."""
    owner = await api.new_user("prober")
    marker = tmp_path / "marker"
    for data in (crafted_runstring_file(marker), zip_bomb(256 * 1024 * 1024), b"not a zip at all"):
        status, inspected = await api.call("POST", INSPECT, owner, data=file_form(data))
        up_status, uploaded = await api.call(
            "POST",
            "/api/models/upload",
            owner,
            data=upload_form(
                data, "evil", "classification", [{"name": "a", "type": "number"}], ["0", "1"]
            ),
        )
        assert status == up_status and status in (400, 413), inspected
        assert inspected["error"]["code"] == uploaded["error"]["code"]
        assert {k: v for k, v in inspected["error"]["details"].items() if k != "request_id"} == {
            k: v for k, v in uploaded["error"]["details"].items() if k != "request_id"
        }
    assert not marker.exists()
    assert stored_files(api) == []


async def test_inspect_validates_its_form(api: Api) -> None:
    """No file, a JSON body or an unknown field: a clear 400, as the other upload routes do."""
    owner = await api.new_user("formal")
    status, body = await api.call("POST", INSPECT, owner, json={"file": "x"})
    assert status == 400, body
    form = file_form(sio.dumps(upload_pipeline()))
    form.add_field("name", "surprise")
    status, body = await api.call("POST", INSPECT, owner, data=form)
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_INPUT", body
    status, body = await api.call("POST", INSPECT, {}, data=file_form(b"x"))
    assert status == 401, body
