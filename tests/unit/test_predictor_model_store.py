"""The model store saves atomically and loads only trusted skops artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from predictor.model_store import (
    InvalidVersionIdError,
    ModelNotFoundError,
    ModelStore,
    UntrustedModelError,
    check_skops_file,
)


class SneakyEstimator(BaseEstimator):  # type: ignore[misc]
    """A user-defined class: skops must not import it on load."""

    def predict(self, X):
        return np.zeros(len(X))


def _pipeline() -> Pipeline:
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "color": ["red", "blue", "red", "blue"]})
    pipe = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["size"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    )
    return pipe.fit(frame, [0, 1, 0, 1])


def test_saves_and_loads_a_pipeline_with_metadata(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    path = store.save("v1", _pipeline(), {"task": "classification"})
    assert (path / "model.skops").is_file() and (path / "metadata.json").is_file()
    loaded = store.load("v1")
    assert loaded.metadata == {"task": "classification"}
    assert loaded.size_bytes > 0
    frame = pd.DataFrame({"size": [2.5], "color": ["red"]})
    assert loaded.estimator.predict(frame).shape == (1,)
    assert store.exists("v1")
    store.delete("v1")
    assert not store.exists("v1")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_saving_again_replaces_the_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.save("v1", _pipeline(), {"n": 1})
    store.save("v1", _pipeline(), {"n": 2})
    assert store.load("v1").metadata == {"n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "..", "v 1"])
def test_rejects_unsafe_version_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidVersionIdError):
        ModelStore(tmp_path).exists(bad)


def test_missing_version_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        ModelStore(tmp_path).load("nope")


def test_refuses_artifacts_with_untrusted_types(tmp_path: Path) -> None:
    path = tmp_path / "upload.skops"
    sio.dump(SneakyEstimator(), path)
    with pytest.raises(UntrustedModelError) as info:
        check_skops_file(path)
    assert any("SneakyEstimator" in name for name in info.value.untrusted_types)
    (tmp_path / "evil").mkdir()
    path.rename(tmp_path / "evil" / "model.skops")
    with pytest.raises(UntrustedModelError):
        ModelStore(tmp_path).load("evil")


def test_accepts_a_trusted_upload(tmp_path: Path) -> None:
    path = tmp_path / "ok.skops"
    sio.dump(_pipeline(), path)
    check_skops_file(path)
