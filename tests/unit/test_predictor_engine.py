"""The predictor's batch logic: vectorised predictions, per-row errors, LRU cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from infra.model_store import ModelStore
from predictor.engine import BatchPredictor, ModelCache


def store_with_models(root: Path) -> ModelStore:
    store = ModelStore(root)
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "c": ["a", "b", "a", "b"]})
    encode = ColumnTransformer([("c", OneHotEncoder(), ["c"])], remainder="passthrough")
    store.save(
        "clf",
        Pipeline([("e", encode), ("m", LogisticRegression())]).fit(frame, ["n", "y", "n", "y"]),
        {},
    )
    store.save(
        "reg", Pipeline([("e", encode), ("m", LinearRegression())]).fit(frame, [0, 1, 2, 3]), {}
    )
    return store


def test_classifier_batch_gives_labels_and_probabilities_per_row(tmp_path: Path) -> None:
    predictor = BatchPredictor(ModelCache(store_with_models(tmp_path), 2))
    outcome = predictor.run("clf", ["x", "c"], [[0.0, "a"], [3.0, "b"]], True)
    assert outcome.error_code is None and outcome.row_errors == 0
    assert [r.prediction for r in outcome.results] == ["n", "y"]
    assert set(outcome.results[0].probabilities or {}) == {"n", "y"}
    assert outcome.cpu_ms > 0 and outcome.inference_ms > 0


def test_a_failing_row_gets_its_own_error_and_the_others_their_predictions(tmp_path: Path) -> None:
    predictor = BatchPredictor(ModelCache(store_with_models(tmp_path), 2))
    outcome = predictor.run("reg", ["x", "c"], [[1.0, "a"], [1.0, "zzz"], [2.0, "b"]], False)
    assert outcome.row_errors == 1
    assert outcome.results[1].error_code == "PREDICTION_FAILED"
    assert "zzz" in (outcome.results[1].error_message or "")
    assert isinstance(outcome.results[0].prediction, float)
    assert np.isclose(outcome.results[2].prediction, 2.0, atol=0.5)


def test_an_unknown_version_fails_the_batch_as_model_unavailable(tmp_path: Path) -> None:
    predictor = BatchPredictor(ModelCache(ModelStore(tmp_path), 2))
    outcome = predictor.run("nope", ["x"], [[1.0]], False)
    assert outcome.error_code == "MODEL_UNAVAILABLE" and outcome.results == []


def test_the_cache_keeps_the_most_recently_used_models(tmp_path: Path) -> None:
    cache = ModelCache(store_with_models(tmp_path), 1)
    cache.get("clf")
    cache.get("reg")
    assert list(cache.loaded()) == ["reg"] and cache.evictions == 1 and cache.loads == 2
    cache.get("reg")
    assert cache.loads == 2
