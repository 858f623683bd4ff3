"""Compiled inference: the ONNX conversion of every catalogue algorithm and of a typical uploaded
pipeline answers as scikit-learn does (labels identical, probabilities/values within 1e-5), the
predictor answers identically through both paths, and anything else falls back to scikit-learn
with the reason recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from infra import compiled as compiled_module
from infra.compiled import (
    ONNX_FILE,
    SERVING_KEY,
    TOLERANCE,
    compile_estimator,
)
from infra.model_store import ModelStore
from management_api.catalog import Catalog, CompileLimits
from management_api.datasets import load_dataset
from management_api.fitting import train
from predictor.engine import BatchPredictor, ModelCache
from schemas import Task

CATALOGUE = [
    ("logistic_regression", "iris", {}),
    ("logistic_regression", "breast_cancer", {}),
    ("linear_regression", "diabetes", {}),
    ("random_forest", "wine", {"n_estimators": 20}),
    ("random_forest", "diabetes", {"n_estimators": 20}),
    ("gradient_boosting", "iris", {"n_estimators": 20}),
    ("gradient_boosting", "breast_cancer", {"n_estimators": 20}),
    ("gradient_boosting", "diabetes", {"n_estimators": 20}),
]


def both_paths(
    store: ModelStore, version_id: str, names: list[str], rows: list[list[Any]], proba: bool
) -> tuple[list[Any], list[Any], bool]:
    """The predictor's answers through onnxruntime and through scikit-learn (same rows)."""
    cache = ModelCache(store, 2)
    loaded = cache.get(version_id)
    served_by_onnx = loaded.compiled is not None and loaded.compiled.inputs(names, rows) is not None
    onnx = BatchPredictor(cache).run(version_id, names, rows, proba)
    loaded.compiled = None
    sklearn = BatchPredictor(cache).run(version_id, names, rows, proba)
    return onnx.results, sklearn.results, served_by_onnx


def assert_same_answers(onnx: list[Any], sklearn: list[Any]) -> None:
    assert len(onnx) == len(sklearn)
    for a, b in zip(onnx, sklearn, strict=True):
        assert a.error_code == b.error_code
        if isinstance(b.prediction, float):
            assert type(a.prediction) is float
            assert abs(a.prediction - b.prediction) <= TOLERANCE * max(1.0, abs(b.prediction))
        else:
            assert a.prediction == b.prediction and type(a.prediction) is type(b.prediction)
        if b.probabilities is None:
            assert a.probabilities is None
        else:
            assert a.probabilities is not None
            assert list(a.probabilities) == list(b.probabilities)
            for c, p in b.probabilities.items():
                assert abs(a.probabilities[c] - p) <= TOLERANCE


@pytest.mark.parametrize(("algorithm", "dataset", "params"), CATALOGUE)
def test_every_catalogue_algorithm_is_served_by_onnx_with_scikit_learns_answers(
    tmp_path: Path, algorithm: str, dataset: str, params: dict[str, Any]
) -> None:
    x, y, task = load_dataset(dataset)
    frame = x.copy()
    frame["target"] = y
    trained = train(frame, "target", algorithm, params, task)
    features = [f.model_dump(mode="json") for f in trained.features]
    onnx, record = compile_estimator(
        trained.estimator, features, trained.check_rows, "held-out split"
    )
    assert record["runtime"] == "onnx", record["reason"]
    assert onnx is not None and record["rows_checked"] >= trained.n_test
    assert record["max_abs_diff"] is not None
    if task == Task.CLASSIFICATION:
        assert record["max_abs_diff"] <= TOLERANCE
    else:  # tree regressors sum in float32 in onnxruntime: 1e-5 relative to the value
        assert record["max_abs_diff"] <= TOLERANCE * float(np.max(np.abs(y)))
    assert record["layout"]["kind"] == "tensor"  # all numeric: one [N, F] double tensor

    store = ModelStore(tmp_path)
    store.save("v", trained.estimator, {SERVING_KEY: record}, onnx)
    names = [f["name"] for f in features]
    rows = x[names].astype(float).values.tolist()[:120]
    onnx_answers, sklearn_answers, by_onnx = both_paths(
        store, "v", names, rows, task == Task.CLASSIFICATION
    )
    assert by_onnx
    assert_same_answers(onnx_answers, sklearn_answers)


def uploaded_pipeline(
    handle_unknown: str = "ignore",
) -> tuple[Pipeline, pd.DataFrame, list[dict[str, Any]]]:
    """What a user typically uploads: imputer, scaler, one-hot encoder in a ColumnTransformer
    over a DataFrame of numbers and categories, then a classifier."""
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n),
            "income": rng.normal(3000, 900, n),
            "city": rng.choice(["paris", "lyon", "nantes"], n).astype(object),
            "plan": rng.choice(["free", "pro"], n).astype(object),
        }
    )
    frame.loc[::17, "age"] = np.nan
    target = np.where(
        (frame["income"] > 3100) ^ (frame["city"] == "lyon") | (frame["plan"] == "pro"), "yes", "no"
    )
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categories = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown=handle_unknown)),
        ]
    )
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("num", numeric, ["age", "income"]), ("cat", categories, ["city", "plan"])]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, target)
    features = [
        {"name": "age", "type": "number", "required": False},
        {"name": "income", "type": "number"},
        {"name": "city", "type": "category", "categories": ["lyon", "nantes", "paris"]},
        {"name": "plan", "type": "category", "categories": ["free", "pro"]},
    ]
    return pipeline, frame, features


def test_an_uploaded_mixed_pipeline_is_served_by_onnx_and_answers_like_scikit_learn(
    tmp_path: Path,
) -> None:
    pipeline, frame, features = uploaded_pipeline()
    onnx, record = compile_estimator(pipeline, features, None, "")
    assert record["runtime"] == "onnx", record["reason"]
    assert record["rows_source"].startswith("sampled from the feature spec")
    layout = record["layout"]
    assert layout["kind"] == "columns"
    assert [(i["name"], i["dtype"]) for i in layout["inputs"]] == [
        ("age", "double"),
        ("income", "double"),
        ("city", "string"),
        ("plan", "string"),
    ]
    assert layout["missing_numbers"] is True  # the imputer fills them, and the check covered it

    store = ModelStore(tmp_path)
    store.save("up", pipeline, {SERVING_KEY: record}, onnx)
    names = list(frame.columns)
    rows = [[None if pd.isna(v) else v for v in row] for row in frame.values.tolist()[:60]]
    onnx_answers, sklearn_answers, by_onnx = both_paths(store, "up", names, rows, True)
    assert by_onnx
    assert_same_answers(onnx_answers, sklearn_answers)
    # A category the encoder never saw, or a missing one: scikit-learn answers that batch.
    odd = [[30.0, 2000.0, "berlin", "pro"], [30.0, 2000.0, None, "free"]]
    loaded = ModelCache(store, 1).get("up")
    assert loaded.compiled is not None and loaded.compiled.inputs(names, odd) is None
    onnx_answers, sklearn_answers, _ = both_paths(store, "up", names, odd, True)
    assert_same_answers(onnx_answers, sklearn_answers)


def test_an_unknown_category_refused_by_scikit_learn_stays_a_row_error(tmp_path: Path) -> None:
    pipeline, frame, features = uploaded_pipeline(handle_unknown="error")
    onnx, record = compile_estimator(pipeline, features, None, "")
    assert record["runtime"] == "onnx", record["reason"]
    store = ModelStore(tmp_path)
    store.save("m", pipeline, {SERVING_KEY: record}, onnx)
    predictor = BatchPredictor(ModelCache(store, 1))
    rows = [
        [30.0, 2000.0, "paris", "pro"],
        [30.0, 2000.0, "zzz", "pro"],
        [50.0, 4000.0, "lyon", "free"],
    ]
    outcome = predictor.run("m", list(frame.columns), rows, True)
    assert outcome.row_errors == 1
    assert outcome.results[1].error_code == "PREDICTION_FAILED"
    assert "zzz" in (outcome.results[1].error_message or "")
    expected = pipeline.predict(pd.DataFrame([rows[0], rows[2]], columns=frame.columns))
    assert [outcome.results[i].prediction for i in (0, 2)] == list(expected)


class NoConverterClassifier(LogisticRegression):
    """A classifier skl2onnx knows nothing about."""


def test_a_model_without_converter_is_served_by_scikit_learn_and_says_why() -> None:
    x, y, _ = load_dataset("iris")
    model = NoConverterClassifier(max_iter=500).fit(x.to_numpy(), y)
    features = [{"name": n, "type": "number"} for n in x.columns]
    onnx, record = compile_estimator(model, features, x.values.tolist(), "held-out split")
    assert onnx is None and record["runtime"] == "sklearn"
    assert "no converter for NoConverterClassifier" in record["reason"]


def test_a_conversion_that_disagrees_is_served_by_scikit_learn_with_the_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y, _ = load_dataset("iris")
    model = LogisticRegression(max_iter=500).fit(x, y)
    features = [{"name": n, "type": "number"} for n in x.columns]
    monkeypatch.setattr(compiled_module, "TOLERANCE", 0.0)  # rounding differences now disagree
    onnx, record = compile_estimator(model, features, x.values.tolist(), "held-out split")
    assert onnx is None and record["runtime"] == "sklearn"
    assert record["reason"].startswith("probabilities differ by")
    assert record["max_abs_diff"] > 0 and record["rows_checked"] >= 150


def test_a_tampered_onnx_file_is_not_loaded_and_scikit_learn_serves(tmp_path: Path) -> None:
    pipeline, frame, features = uploaded_pipeline()
    onnx, record = compile_estimator(pipeline, features, None, "")
    assert onnx is not None
    store = ModelStore(tmp_path)
    store.save("t", pipeline, {SERVING_KEY: record}, onnx)
    metadata = orjson.loads((tmp_path / "t" / "metadata.json").read_bytes())
    assert len(metadata[SERVING_KEY]["onnx_sha256"]) == 64
    assert ModelCache(store, 1).get("t").compiled is not None
    (tmp_path / "t" / ONNX_FILE).write_bytes(onnx + b"\x00")
    loaded = ModelCache(store, 1).get("t")
    assert loaded.compiled is None and loaded.estimator is not None
    outcome = BatchPredictor(ModelCache(store, 1)).run(
        "t", list(frame.columns), [[30.0, 2000.0, "paris", "pro"]], True
    )
    assert outcome.row_errors == 0 and outcome.results[0].prediction in {"yes", "no"}


def test_the_compile_child_converts_an_upload_and_a_crash_or_limit_is_a_fallback(
    tmp_path: Path,
) -> None:
    """Catalog.compile runs the conversion in a limited child process; past its limit the
    version is served by scikit-learn, the reason recorded, nothing raised."""
    pipeline, _, features = uploaded_pipeline()
    path = tmp_path / "model.skops"
    ModelStore.save_to_file(pipeline, path)
    catalog = Catalog(None, ModelStore(tmp_path / "store"))  # type: ignore[arg-type]
    onnx, record = asyncio.run(catalog.compile(path, features, None, "unused"))
    assert onnx is not None and record["runtime"] == "onnx"
    assert record["rows_source"].startswith("sampled from the feature spec")
    tight = Catalog(
        None,  # type: ignore[arg-type]
        ModelStore(tmp_path / "store"),
        compile_limits=CompileLimits(timeout_s=0.01),
    )
    onnx, record = asyncio.run(tight.compile(path, features, None, "unused"))
    assert onnx is None and record["runtime"] == "sklearn"
    assert "limit" in record["reason"]
    path.write_bytes(b"not a skops file")
    onnx, record = asyncio.run(catalog.compile(path, features, None, "unused"))
    assert onnx is None and record["reason"].startswith("the ONNX conversion failed")


@pytest.mark.parametrize("algorithm", ["logistic_regression", "random_forest"])
def test_a_version_trained_on_numbers_and_categories_is_checked_on_its_held_out_rows(
    tmp_path: Path, algorithm: str
) -> None:
    """A CSV-like frame with missing numbers and categories (missing ones too): the trained
    pipeline feeds one input per column; held-out rows with a missing category are left to
    scikit-learn, the others checked."""
    pipeline, frame, _ = uploaded_pipeline()
    frame = frame.copy()
    frame.loc[::23, "city"] = None
    frame["target"] = pipeline.predict(frame.fillna({"city": "paris"}))
    params = {"n_estimators": 20} if algorithm == "random_forest" else {}
    trained = train(frame, "target", algorithm, params, Task.CLASSIFICATION)
    features = [f.model_dump(mode="json") for f in trained.features]
    onnx, record = compile_estimator(
        trained.estimator, features, trained.check_rows, "held-out split"
    )
    assert record["runtime"] == "onnx", record["reason"]
    assert record["layout"]["kind"] == "columns"
    assert 0 < record["rows_checked"] <= len(trained.check_rows or []) + 21
    store = ModelStore(tmp_path)
    store.save("csv", trained.estimator, {SERVING_KEY: record}, onnx)
    names = [f["name"] for f in features]
    rows = [[None if pd.isna(v) else v for v in row] for row in frame[names].values.tolist()]
    city = names.index("city")
    known = [row for row in rows if row[city] is not None][:50]
    onnx_answers, sklearn_answers, by_onnx = both_paths(store, "csv", names, known, True)
    assert by_onnx
    assert_same_answers(onnx_answers, sklearn_answers)
    missing = [row for row in rows if row[city] is None][:5]
    onnx_answers, sklearn_answers, by_onnx = both_paths(store, "csv", names, missing, True)
    assert not by_onnx
    assert_same_answers(onnx_answers, sklearn_answers)


def test_versions_saved_before_compiled_inference_are_compiled_at_start(tmp_path: Path) -> None:
    """A verified store entry with no serving record (an earlier run's, the demo's) gets one,
    with its ONNX file and hash, on rows sampled from its feature spec; then it is left alone."""
    pipeline, _, features = uploaded_pipeline()
    store = ModelStore(tmp_path)
    store.save("old", pipeline, {"features": features})
    assert store.uncompiled() == ["old"] and ModelCache(store, 1).get("old").compiled is None
    asyncio.run(Catalog(None, store).compile_stored())  # type: ignore[arg-type]
    serving = store.metadata("old")[SERVING_KEY]
    assert serving["runtime"] == "onnx" and serving["rows_source"].startswith("sampled")
    assert store.uncompiled() == [] and ModelCache(store, 1).get("old").compiled is not None


def test_missing_numbers_stay_scikit_learns_where_onnx_answers_them_differently(
    tmp_path: Path,
) -> None:
    """A forest fitted with missing values sends them down its trees its own way, which the
    conversion does not keep: it is still served by onnxruntime for complete rows, and rows with
    a missing number are answered by scikit-learn."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = x.copy()
    x[::7, 0] = np.nan
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(x, y)
    features = [{"name": f"x{i}", "type": "number"} for i in range(x.shape[1])]
    rows = [[None if np.isnan(v) else float(v) for v in r] for r in x[:200].tolist()]
    complete = [r for r in rows if r[0] is not None]
    onnx, record = compile_estimator(model, features, complete, "held-out split")
    assert record["runtime"] == "onnx", record["reason"]
    assert record["layout"]["missing_numbers"] is False
    store = ModelStore(tmp_path)
    store.save("nan", model, {SERVING_KEY: record}, onnx)
    names = [f["name"] for f in features]
    onnx_answers, sklearn_answers, by_onnx = both_paths(store, "nan", names, complete[:24], True)
    assert by_onnx
    assert_same_answers(onnx_answers, sklearn_answers)
    holes = [r for r in rows if r[0] is None][:5]
    onnx_answers, sklearn_answers, by_onnx = both_paths(store, "nan", names, holes, True)
    assert not by_onnx
    assert_same_answers(onnx_answers, sklearn_answers)


def test_rows_sampled_for_an_upload_fall_where_its_scaler_learnt_its_inputs() -> None:
    """No held-out rows: the numbers are drawn around the centre and spread the model's own
    scaler learnt (an income near 3,000, not near 0), the categories from the schema."""
    from infra.compiled import plausible_ranges, sampled_rows

    pipeline, frame, features = uploaded_pipeline()
    ranges = plausible_ranges(pipeline, [f["name"] for f in features])
    assert abs(ranges["income"][0] - frame["income"].mean()) < 1.0
    rows = sampled_rows(features, ranges)
    incomes = [r[1] for r in rows]
    assert 2000 < float(np.median(incomes)) < 4000
    assert {r[2] for r in rows} == {"lyon", "nantes", "paris"}


def test_a_model_with_several_outputs_is_served_by_scikit_learn() -> None:
    from sklearn.ensemble import RandomForestRegressor

    x, y, _ = load_dataset("diabetes")
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, np.c_[y, -y])
    features = [{"name": n, "type": "number"} for n in x.columns]
    onnx, record = compile_estimator(model, features, x.values.tolist()[:50], "held-out split")
    assert onnx is None and record["runtime"] == "sklearn"
    assert "several outputs" in record["reason"]


def test_compile_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from management_api.catalog import CompileLimits
    from management_api.settings import ManagementSettings

    default = CompileLimits.of(ManagementSettings())
    assert (default.memory_bytes, default.timeout_s) == (1024 * 2**20, 120.0)
    monkeypatch.setenv("MODELGATE_MANAGEMENT_COMPILE_MEMORY_MB", "256")
    monkeypatch.setenv("MODELGATE_MANAGEMENT_COMPILE_TIME_LIMIT_S", "30")
    limits = CompileLimits.of(ManagementSettings())
    assert limits.memory_bytes == 256 * 2**20
    assert limits.cpu_seconds == limits.timeout_s == 30.0


def test_a_version_loaded_before_its_compile_switches_to_onnx_once_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """management-api compiles versions saved before compiled inference in the background at
    its start; a predictor that loaded one meanwhile (scikit-learn) picks up the record."""
    import predictor.engine as engine

    monkeypatch.setattr(engine, "SERVING_RECHECK_S", 0.0)
    pipeline, frame, features = uploaded_pipeline()
    store = ModelStore(tmp_path)
    store.save("old", pipeline, {})  # no serving record: saved before compiled inference
    assert store.uncompiled() == ["old"]
    cache = ModelCache(store, 2)
    assert cache.get("old").compiled is None
    assert cache.get("old").compiled is None and not cache.compiled("old")  # still no record

    onnx, record = compile_estimator(pipeline, features, None, "")
    assert record["runtime"] == "onnx", record["reason"]
    store.record_compiled("old", record, onnx)
    served = cache.get("old")
    assert served.compiled is not None and cache.compiled("old")
    assert cache.get("old") is served  # kept, not looked up again
    names = list(frame.columns)
    rows = [[None if pd.isna(v) else v for v in row] for row in frame.values.tolist()[:20]]
    onnx_answers, sklearn_answers, by_onnx = both_paths(store, "old", names, rows, True)
    assert by_onnx
    assert_same_answers(onnx_answers, sklearn_answers)


def test_a_fallback_record_stops_the_rechecks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import predictor.engine as engine

    monkeypatch.setattr(engine, "SERVING_RECHECK_S", 0.0)
    pipeline, _, _ = uploaded_pipeline()
    store = ModelStore(tmp_path)
    store.save("old", pipeline, {})
    cache = ModelCache(store, 1)
    first = cache.get("old")
    store.record_compiled("old", {"runtime": "sklearn", "reason": "no converter"}, None)
    served = cache.get("old")
    assert served is not first and served.compiled is None
    assert SERVING_KEY in served.metadata  # scikit-learn for good: no more lookups
    assert cache.get("old") is served
