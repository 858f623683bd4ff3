# ruff: noqa: F811
"""Compiled inference through the management API (issue 13): a trained version is converted and
checked on its held-out split in a child process and served by onnxruntime; an upload is checked
on rows sampled from its schema; one the converter cannot handle is served by scikit-learn and
the version's details say why. The predictor's engine answers from what the store holds."""

from __future__ import annotations

import numpy as np
import orjson
import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.ensemble import AdaBoostClassifier

from infra.compiled import ONNX_FILE, SERVING_KEY
from infra.model_store import METADATA_FILE, ModelStore
from predictor.engine import BatchPredictor, ModelCache
from tests.integration.test_byo_model import upload_form
from tests.management_support import Api, api, churn_csv, clickhouse_db, make_api  # noqa: F401
from tests.unit.test_model_store import upload_pipeline


async def test_a_trained_version_is_compiled_on_its_held_out_rows_and_served_by_onnx(
    api: Api,
) -> None:
    owner = await api.new_user("compiler")
    job = await api.train_csv(
        owner, "churn", churn_csv(), "churned", params=orjson.dumps({"n_estimators": 20}).decode()
    )
    assert job["status"] == "succeeded", job
    status, model = await api.call("GET", f"/api/models/{job['model_id']}", owner)
    assert status == 200, model
    version = model["versions"][0]
    serving = version["serving"]
    assert serving["runtime"] == "onnx", serving
    assert serving["reason"] is None
    assert serving["rows_source"] == "held-out split"
    assert serving["rows_checked"] >= 40 and serving["max_abs_diff"] <= 1e-5
    folder = api.settings.model_store / version["id"]
    assert (folder / ONNX_FILE).is_file()
    recorded = orjson.loads((folder / METADATA_FILE).read_bytes())[SERVING_KEY]
    assert recorded["layout"]["kind"] == "columns"  # numbers and a category: one input each

    names = [f["name"] for f in version["features"]]
    cache = ModelCache(ModelStore(api.settings.model_store), capacity=2)
    assert cache.get(version["id"]).compiled is not None
    row = {"age": 55, "monthly_spend": 40.0, "plan": "basic", "has_support": True}
    outcome = BatchPredictor(cache).run(version["id"], names, [[row[n] for n in names]], True)
    assert outcome.error_code is None and outcome.row_errors == 0
    assert outcome.results[0].prediction in {"yes", "no"}


async def test_uploads_are_checked_on_sampled_rows_and_an_unconvertible_one_says_why(
    api: Api,
) -> None:
    owner = await api.new_user("uploader")
    features = [
        {"name": "size", "type": "number"},
        {"name": "color", "type": "category", "categories": ["blue", "red"]},
        {"name": "rest", "type": "number"},
    ]
    status, created = await api.call(
        "POST",
        "/api/models/upload",
        owner,
        data=upload_form(
            sio.dumps(upload_pipeline()), "typical", "classification", features, ["0", "1"]
        ),
    )
    assert status == 201, created
    status, model = await api.call("GET", f"/api/models/{created['id']}", owner)
    serving = model["versions"][0]["serving"]
    assert serving["runtime"] == "onnx", serving
    assert serving["rows_source"].startswith("sampled from the feature spec")

    x, y = load_iris(return_X_y=True)
    boosted = AdaBoostClassifier(n_estimators=5, random_state=0).fit(x, y)
    flowers = [{"name": f"x{i}", "type": "number"} for i in range(4)]
    status, created = await api.call(
        "POST",
        "/api/models/upload",
        owner,
        data=upload_form(sio.dumps(boosted), "boosted", "classification", flowers, ["0", "1", "2"]),
    )
    assert status == 201, created
    status, model = await api.call("GET", f"/api/models/{created['id']}", owner)
    version = model["versions"][0]
    serving = version["serving"]
    assert serving["runtime"] == "sklearn" and serving["reason"], serving
    assert not (api.settings.model_store / version["id"] / ONNX_FILE).exists()
    engine = BatchPredictor(ModelCache(ModelStore(api.settings.model_store), capacity=2))
    outcome = engine.run(version["id"], [f["name"] for f in flowers], x[:3].tolist(), True)
    assert [r.prediction for r in outcome.results] == list(boosted.predict(x[:3]))
    assert np.isclose(sum((outcome.results[0].probabilities or {}).values()), 1.0, atol=1e-5)
