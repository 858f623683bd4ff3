"""The held-out evaluation a trained version keeps: confusion matrix and per-class scores of a
classifier, residuals of a regressor, permutation importance per input feature; bounded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from management_api import evaluation
from management_api.datasets import load_dataset
from management_api.fitting import train


def frame_of(dataset: str) -> pd.DataFrame:
    features, target, _ = load_dataset(dataset)
    frame = features.copy()
    frame["target"] = target
    return frame


def mixed_frame(rows: int = 240, classes: int = 3) -> pd.DataFrame:
    """Numbers and a category column (one-hot encoded inside the pipeline)."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "spend": rng.normal(50, 15, rows).round(2),
            "plan": rng.choice(["basic", "plus", "pro", "max"], rows),
        }
    )
    frame["label"] = [f"c{int(a) % classes}" for a in frame["age"]]
    return frame


def test_classifier_matrix_sums_to_the_test_rows_and_importance_is_per_input_feature() -> None:
    trained = train(mixed_frame(), "label", "random_forest", {"n_estimators": 10})
    ev = trained.evaluation
    assert ev is not None
    matrix = ev["confusion_matrix"]
    assert matrix["labels"] == trained.classes
    assert sum(map(sum, matrix["matrix"])) == trained.n_test == ev["n_test"]
    assert len(matrix["matrix"]) == len(matrix["labels"]) == 3
    assert [row["label"] for row in ev["per_class"]] == trained.classes
    assert sum(row["support"] for row in ev["per_class"]) == trained.n_test
    assert all(0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1 for row in ev["per_class"])
    # One entry per raw input column: "plan" once, not its one-hot columns.
    assert sorted(e["feature"] for e in ev["importance"]) == ["age", "plan", "spend"]
    assert ev["importance"][0]["feature"] == "age"  # the label is a function of age
    assert ev["importance_scoring"] == "accuracy"
    assert "residuals" not in ev
    json.dumps(ev, allow_nan=False)


def test_regressor_residuals_are_a_bounded_histogram_and_sample() -> None:
    trained = train(frame_of("diabetes"), "target", "linear_regression", {})
    ev = trained.evaluation
    assert ev is not None
    residuals = ev["residuals"]
    assert sum(residuals["counts"]) == trained.n_test
    assert len(residuals["bin_edges"]) == len(residuals["counts"]) + 1
    assert len(residuals["points"]) == min(trained.n_test, evaluation.MAX_RESIDUAL_POINTS)
    assert len(ev["importance"]) == 10
    assert ev["importance_scoring"] == "r2"
    assert "confusion_matrix" not in ev


def test_many_rows_and_classes_stay_bounded() -> None:
    rng = np.random.default_rng(2)
    rows = 3000
    y = pd.Series(rng.normal(size=rows))
    ev = evaluation.residual_report(y, y + rng.normal(size=rows))
    assert len(ev["residuals"]["points"]) == evaluation.MAX_RESIDUAL_POINTS
    assert len(ev["residuals"]["counts"]) == evaluation.HISTOGRAM_BINS

    labels = [f"k{i:02d}" for i in range(45)]
    truth = pd.Series(rng.choice(labels, rows))
    report = evaluation.classification_report(truth, truth.to_numpy(), labels)
    shown = report["confusion_matrix"]
    assert shown["truncated"] is True
    assert len(shown["labels"]) == len(shown["matrix"]) == evaluation.MAX_MATRIX_CLASSES
    assert len(report["per_class"]) == 45
    assert len(json.dumps(report)) < 20_000
    assert len(json.dumps(ev)) < 20_000


def test_importance_cuts_repeats_and_rows_to_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    trained = train(frame_of("iris"), "target", "logistic_regression", {})
    monkeypatch.setattr(evaluation, "IMPORTANCE_BUDGET_S", 0.0)
    rng = np.random.default_rng(3)
    x = pd.DataFrame({name: rng.normal(size=400) for name in [f.name for f in trained.features]})
    y = pd.Series(trained.estimator.predict(x))
    ev = evaluation.importance_report(trained.estimator, x, y, trained.task)
    assert ev["importance_repeats"] == 1
    assert ev["importance_rows"] == evaluation.IMPORTANCE_MIN_ROWS
    assert len(ev["importance"]) == 4
