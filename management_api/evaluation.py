"""How a trained version did on its held-out split, beyond the headline metrics: the confusion
matrix and per-class scores of a classifier, the residuals of a regressor, and every model's
permutation importance over its input features.

Runs inside the training process right after the fit (``fitting.train``). The answer is plain
JSON, bounded whatever the data: at most ``MAX_MATRIX_CLASSES`` rows and columns of matrix,
``MAX_CLASS_REPORT`` class rows, ``HISTOGRAM_BINS`` bins and ``MAX_RESIDUAL_POINTS`` points; the
importance is one entry per input column (the CSV limits bound their count), permuted on the raw
columns the pipeline receives (a category is one feature, not its one-hot columns), with repeats
and rows cut down so it stays within ``IMPORTANCE_BUDGET_S`` of scoring.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from schemas import Task

MAX_MATRIX_CLASSES = 30
MAX_CLASS_REPORT = 200
HISTOGRAM_BINS = 20
MAX_RESIDUAL_POINTS = 200
IMPORTANCE_REPEATS = 5
IMPORTANCE_MIN_ROWS = 50
IMPORTANCE_BUDGET_S = 20.0
DIGITS = 6


def number(value: Any) -> float | None:
    """A finite float rounded for storage, or None (NaN, infinity)."""
    result = float(value)
    return round(result, DIGITS) if math.isfinite(result) else None


def classification_report(
    y_true: pd.Series[Any], predicted: Any, classes: list[str]
) -> dict[str, Any]:
    """The confusion matrix (rows: true class, columns: predicted) and per-class scores."""
    truth = np.asarray([str(v) for v in y_true], dtype=object)
    guess = np.asarray([str(v) for v in predicted], dtype=object)
    support = {label: int((truth == label).sum()) for label in classes}
    # Too many classes for a readable (and small) matrix: keep the most frequent ones.
    shown = classes
    if len(classes) > MAX_MATRIX_CLASSES:
        shown = sorted(classes, key=lambda c: (-support[c], c))[:MAX_MATRIX_CLASSES]
        shown = [c for c in classes if c in set(shown)]
    matrix = confusion_matrix(truth, guess, labels=shown)
    precision, recall, f1, counts = precision_recall_fscore_support(
        truth, guess, labels=classes, zero_division=0
    )
    rows: list[dict[str, Any]] = [
        {
            "label": label,
            "precision": number(precision[i]),
            "recall": number(recall[i]),
            "f1": number(f1[i]),
            "support": int(counts[i]),
        }
        for i, label in enumerate(classes)
    ]
    if len(rows) > MAX_CLASS_REPORT:
        rows = sorted(rows, key=lambda r: -int(r["support"]))[:MAX_CLASS_REPORT]
    return {
        "confusion_matrix": {
            "labels": list(shown),
            "matrix": [[int(v) for v in row] for row in matrix],
            "truncated": len(shown) < len(classes),
        },
        "per_class": rows,
    }


def residual_report(y_true: pd.Series[Any], predicted: Any) -> dict[str, Any]:
    """Residuals (true minus predicted): summary, histogram and a bounded sample of points."""
    truth = np.asarray(y_true, dtype=float)
    guess = np.asarray(predicted, dtype=float)
    residuals = truth - guess
    finite = np.isfinite(residuals) & np.isfinite(guess)
    residuals, guess = residuals[finite], guess[finite]
    if residuals.size == 0:
        return {"residuals": None}
    counts, edges = np.histogram(residuals, bins=HISTOGRAM_BINS)
    chosen = np.arange(residuals.size)
    if residuals.size > MAX_RESIDUAL_POINTS:
        chosen = np.sort(
            np.random.default_rng(0).choice(residuals.size, MAX_RESIDUAL_POINTS, replace=False)
        )
    return {
        "residuals": {
            "mean": number(residuals.mean()),
            "std": number(residuals.std()),
            "min": number(residuals.min()),
            "max": number(residuals.max()),
            "bin_edges": [number(e) for e in edges],
            "counts": [int(c) for c in counts],
            "points": [
                {"predicted": number(guess[i]), "residual": number(residuals[i])} for i in chosen
            ],
        }
    }


def importance_report(
    estimator: Any, x_test: pd.DataFrame, y_test: pd.Series[Any], task: Task
) -> dict[str, Any]:
    """Permutation importance of each input column on the held-out rows, within a time budget:
    one scoring pass is timed, then repeats (and, if need be, rows) are cut to fit the budget."""
    scoring = "accuracy" if task == Task.CLASSIFICATION else "r2"
    n_features = x_test.shape[1]
    started = time.perf_counter()
    estimator.score(x_test, y_test)
    one_pass = max(time.perf_counter() - started, 1e-4)
    rows = len(x_test)
    repeats = int(min(IMPORTANCE_REPEATS, IMPORTANCE_BUDGET_S // (one_pass * n_features)))
    if repeats < 1:
        repeats = 1
        share = IMPORTANCE_BUDGET_S / (one_pass * n_features)
        rows = max(min(IMPORTANCE_MIN_ROWS, rows), int(rows * share))
    result = permutation_importance(
        estimator,
        x_test,
        y_test,
        scoring=scoring,
        n_repeats=repeats,
        random_state=0,
        max_samples=rows if rows < len(x_test) else 1.0,
    )
    entries: list[dict[str, Any]] = [
        {
            "feature": str(name),
            "mean": number(result.importances_mean[i]),
            "std": number(result.importances_std[i]),
        }
        for i, name in enumerate(x_test.columns)
    ]
    entries.sort(key=lambda e: -(e["mean"] if e["mean"] is not None else -math.inf))
    return {
        "importance": entries,
        "importance_scoring": scoring,
        "importance_repeats": repeats,
        "importance_rows": int(rows),
    }


def evaluate(
    estimator: Any,
    x_test: pd.DataFrame,
    y_test: pd.Series[Any],
    predicted: Any,
    task: Task,
    classes: list[str] | None,
) -> dict[str, Any]:
    """The stored evaluation of a fitted pipeline on its held-out split (JSON, bounded)."""
    out: dict[str, Any] = {"n_test": len(x_test)}
    if task == Task.CLASSIFICATION:
        out.update(classification_report(y_test, predicted, classes or []))
    else:
        out.update(residual_report(y_test, predicted))
    out.update(importance_report(estimator, x_test, y_test, task))
    return out
