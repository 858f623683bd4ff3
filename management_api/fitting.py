"""Fitting: one model trained and scored on a held-out split, and the training process around it.

Everything here is plain synchronous code. A job's fit runs in a child process (``train_job``,
under ``infra.sandbox``'s limits); ``train`` reports progress and log lines through callbacks. The
estimator is always a ``Pipeline`` whose first step is a ``ColumnTransformer`` over the raw
feature columns, so a predictor feeds it a DataFrame of the request's fields as they arrive
(categories as strings, one-hot encoded inside the pipeline).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from management_api.algorithms import resolve_params
from management_api.datasets import (
    BOOLEAN_WORDS,
    ColumnChoices,
    TrainingError,
    apply_column_choices,
    infer_features,
    infer_task,
    load_dataset,
    read_csv,
    target_labels,
)
from management_api.evaluation import evaluate
from management_api.reference import boolean_label, build_profile
from schemas import FeatureSpec, FeatureType, Task

MIN_ROWS = 10
TRAINING_NICENESS = 10

# --- the fit ----------------------------------------------------------------------------------


def build_pipeline(features: list[FeatureSpec], model: Any, scale: bool) -> Pipeline:
    numeric = [f.name for f in features if f.type != FeatureType.CATEGORY]
    categorical = [f.name for f in features if f.type == FeatureType.CATEGORY]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        transformers.append(
            (
                "categories",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return Pipeline([("features", ColumnTransformer(transformers)), ("model", model)])


def json_value(value: Any) -> Any:
    """A numpy/pandas scalar as a plain JSON value (NaN → None)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class TrainedModel:
    """The outcome of one fit: the estimator and everything a model version records."""

    estimator: Any
    """The fitted ``Pipeline``, or the path of its skops artifact written by a training process."""
    task: Task
    algorithm: str
    params: dict[str, Any]
    features: list[FeatureSpec]
    classes: list[str] | None
    metrics: dict[str, float | None]
    target: str
    n_train: int
    n_test: int
    example: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    """Confusion matrix / residuals and permutation importance on the held-out split."""
    check_rows: list[list[Any]] | None = None
    """Held-out rows (in ``features`` order, as a predictor receives them) that the ONNX
    conversion is checked on."""
    reference: dict[str, Any] | None = None
    """Reference profile of the training inputs and test-split predictions (issue 15, drift)."""


Reporter = Callable[[str, float | None], None]


def _quiet(_line: str, _progress: float | None) -> None:
    return None


def example_row(x: pd.DataFrame, raw: pd.DataFrame, features: list[FeatureSpec]) -> dict[str, Any]:
    """The first held-out row as a client would send it (booleans as booleans, ints as ints)."""
    row = raw.iloc[0]
    out: dict[str, Any] = {}
    for spec in features:
        value = json_value(row[spec.name])
        if value is None:
            continue
        if spec.type == FeatureType.BOOLEAN:
            value = (
                bool(value) if not isinstance(value, str) else BOOLEAN_WORDS[value.strip().lower()]
            )
        elif spec.type == FeatureType.INTEGER:
            value = int(value)
        elif spec.type == FeatureType.NUMBER:
            value = float(value)
        else:
            value = str(value).strip()
        out[spec.name] = value
    return out


MAX_CHECK_CELLS = 200_000


def check_rows(x: pd.DataFrame, features: list[FeatureSpec]) -> list[list[Any]]:
    """Held-out rows as a predictor receives them (missing values as ``None``), bounded."""
    names = [f.name for f in features]
    limit = max(20, min(2000, MAX_CHECK_CELLS // max(1, len(names))))
    head = x[names].head(limit)
    return [[json_value(v) for v in row] for row in head.itertuples(index=False, name=None)]


def binary_or_macro_f1(y_true: Any, y_pred: Any, classes: list[str]) -> float:
    if len(classes) == 2:
        return float(f1_score(y_true, y_pred, average="binary", pos_label=classes[-1]))
    return float(f1_score(y_true, y_pred, average="macro"))


def train(
    frame: pd.DataFrame,
    target_name: str,
    algorithm: str,
    params: dict[str, Any],
    task: Task | None = None,
    test_size: float = 0.2,
    report: Reporter = _quiet,
    categorical: Collection[str] = (),
) -> TrainedModel:
    """Fit a pipeline on ``frame`` predicting ``target_name`` and score it on a held-out split
    (``categorical``: columns the user typed as categories, whatever they hold)."""
    if target_name not in frame.columns:
        raise TrainingError(
            f"target column {target_name!r} is not in the data",
            {"columns": [str(c) for c in frame.columns]},
        )
    frame = frame[frame[target_name].notna()]
    if len(frame) < MIN_ROWS:
        raise TrainingError(f"need at least {MIN_ROWS} rows with a target value, got {len(frame)}")
    raw_x = frame.drop(columns=[target_name])
    if raw_x.shape[1] == 0:
        raise TrainingError("the data has no feature columns besides the target")
    y_raw = frame[target_name]
    task = task or infer_task(y_raw)
    algo, resolved = resolve_params(algorithm, task, params)
    report(f"task: {task.value}; algorithm: {algo.label}; params: {resolved}", 0.05)
    x, features = infer_features(raw_x, categorical)
    kinds: dict[str, int] = {}
    for spec in features:
        kinds[spec.type.value] = kinds.get(spec.type.value, 0) + 1
    report(f"{len(frame)} rows, {len(features)} features ({kinds})", 0.1)

    classes: list[str] | None = None
    if task == Task.CLASSIFICATION:
        y: pd.Series[Any] = target_labels(y_raw)
        counts = y.value_counts()
        if len(counts) < 2:
            raise TrainingError("classification needs at least two classes in the target")
        classes = sorted(str(c) for c in counts.index)
        stratify = y if counts.min() >= 2 else None
    else:
        if not pd.api.types.is_numeric_dtype(y_raw):
            raise TrainingError(
                f"regression needs a numeric target; {target_name!r} is not numeric"
            )
        y = y_raw.astype(float)
        stratify = None
    try:
        x_train, x_test, y_train, y_test, _, raw_test = train_test_split(
            x, y, raw_x, test_size=test_size, random_state=42, stratify=stratify
        )
    except ValueError as exc:
        raise TrainingError(f"cannot split the data: {exc}") from exc
    report(f"split: {len(x_train)} train rows, {len(x_test)} held-out rows", 0.2)

    linear = algo.name in {"logistic_regression", "linear_regression"}
    pipeline = build_pipeline(features, algo.build(task, resolved), scale=linear)
    staged = algo.name in {"random_forest", "gradient_boosting"} and resolved["n_estimators"] >= 10
    if staged:
        # Grow the ensemble in a few warm-started steps so the log shows progress while it fits.
        total = resolved["n_estimators"]
        pipeline.set_params(model__warm_start=True)
        steps = sorted({max(1, total * k // 5) for k in range(1, 6)})
        for done in steps:
            pipeline.set_params(model__n_estimators=done)
            pipeline.fit(x_train, y_train)
            score = pipeline.score(x_train, y_train)
            report(
                f"fitted {done}/{total} estimators; training score {score:.4f}",
                0.2 + 0.6 * done / total,
            )
        pipeline.set_params(model__warm_start=False)
    else:
        pipeline.fit(x_train, y_train)
        report("fitted", 0.8)

    predicted = pipeline.predict(x_test)
    metrics: dict[str, float | None]
    if task == Task.CLASSIFICATION:
        metrics = {
            "accuracy": float(accuracy_score(y_test, predicted)),
            "f1": binary_or_macro_f1(y_test, predicted, classes or []),
            "roc_auc": None,
        }
        try:
            proba = pipeline.predict_proba(x_test)
            model_classes = [str(c) for c in pipeline.classes_]
            if len(model_classes) == 2:
                metrics["roc_auc"] = float(roc_auc_score(y_test == model_classes[1], proba[:, 1]))
            elif len(set(y_test)) == len(model_classes):
                metrics["roc_auc"] = float(
                    roc_auc_score(y_test, proba, multi_class="ovr", labels=model_classes)
                )
        except (ValueError, AttributeError):
            metrics["roc_auc"] = None
    else:
        metrics = {
            "r2": float(r2_score(y_test, predicted)),
            "mae": float(mean_absolute_error(y_test, predicted)),
            "rmse": float(math.sqrt(mean_squared_error(y_test, predicted))),
        }
    metrics = {k: (round(v, 6) if v is not None else None) for k, v in metrics.items()}
    report("held-out metrics: " + ", ".join(f"{k}={v}" for k, v in metrics.items()), 0.9)
    if classes is not None:
        classes = [str(c) for c in pipeline.classes_]
    evaluation = evaluate(pipeline, x_test, y_test, predicted, task, classes)
    report(
        f"evaluation: permutation importance of {len(features)} features "
        f"({evaluation['importance_repeats']} repeats on {evaluation['importance_rows']} rows)",
        0.92,
    )
    return TrainedModel(
        estimator=pipeline,
        task=task,
        algorithm=algo.name,
        params=resolved,
        features=features,
        classes=classes,
        metrics=metrics,
        target=target_name,
        n_train=len(x_train),
        n_test=len(x_test),
        example=example_row(x_test, raw_test, features),
        evaluation=evaluation,
        check_rows=check_rows(x_test, features),
        reference=build_profile(x_train, features, task, list(predicted)),
    )


def example_prediction(trained: TrainedModel) -> dict[str, Any]:
    """What the model answers for its example row (shown in the per-API docs)."""
    frame = pd.DataFrame([trained.example]) if trained.example else None
    if frame is None:
        return {}
    for spec in trained.features:
        if spec.name not in frame.columns:
            frame[spec.name] = np.nan
        elif spec.type == FeatureType.BOOLEAN:
            frame[spec.name] = frame[spec.name].astype(float)
    frame = frame[[f.name for f in trained.features]]
    prediction = json_value(trained.estimator.predict(frame)[0])
    out: dict[str, Any] = {
        "prediction": str(prediction) if trained.task == Task.CLASSIFICATION else prediction
    }
    if trained.task == Task.CLASSIFICATION and hasattr(trained.estimator, "predict_proba"):
        proba = trained.estimator.predict_proba(frame)[0]
        out["probabilities"] = {
            str(c): round(float(p), 4)
            for c, p in zip(trained.estimator.classes_, proba, strict=True)
        }
    return out


# --- the training process ---------------------------------------------------------------------


def with_extra_rows(
    frame: pd.DataFrame, rows: list[dict[str, Any]], task: Task, target: str = "target"
) -> pd.DataFrame:
    """``frame`` and ``rows`` (same columns, ``target`` included; issue 15's feedback rows) as
    one frame; a regression target is read as a number (unreadable: the row is left out)."""
    extra = pd.DataFrame(rows).reindex(columns=frame.columns)
    if task == Task.REGRESSION:
        extra[target] = pd.to_numeric(extra[target], errors="coerce")
    else:
        extra[target] = extra[target].map(lambda v: None if pd.isna(v) else str(v))
    extra = extra[extra[target].notna()]
    for column in frame.columns:
        if column == target:
            continue
        if frame[column].dtype.kind == "b":
            # A CSV's true/false column stays boolean (feedback may say "yes" or 1).
            labels = extra[column].map(boolean_label)
            if labels.notna().all():
                extra[column] = labels == "true"
        elif frame[column].dtype == object:
            # Categories the CSV holds as text stay text (feedback may send 3 for "3").
            extra[column] = extra[column].map(lambda v: v if pd.isna(v) else str(v))
        elif pd.api.types.is_numeric_dtype(frame[column]):
            values = pd.to_numeric(extra[column], errors="coerce")
            whole = frame[column].dtype.kind == "i" and values.notna().all()
            # Integer columns stay integers (the version's feature types must not change).
            extra[column] = values.round().astype(frame[column].dtype) if whole else values
    return pd.concat([frame, extra], ignore_index=True)


def train_job(job: dict[str, Any], report: Callable[[Any], None]) -> dict[str, Any]:
    """One training job in its child process: load the data, fit, score, write the artifact.

    ``job`` holds ``dataset`` (a built-in name) or ``csv`` (bytes) and ``target``, ``algorithm``,
    ``params``, ``task``, ``test_size`` and ``artifact`` (where to write the skops file). Log lines
    and progress go back through ``report``; the result is JSON (the version's metadata and
    example), so the parent never unpickles anything this process made from a user's data.
    """
    report({"pid": os.getpid()})
    # Batch work: the API's own process comes first when the machine is busy.
    with contextlib.suppress(OSError):
        os.nice(TRAINING_NICENESS)

    def say(line: str, progress: float | None) -> None:
        report({"line": line, "progress": progress})

    if job.get("dataset"):
        features, target, _ = load_dataset(job["dataset"])
        frame = features.copy()
        frame["target"] = target
        target_name = "target"
        if job.get("extra_rows"):
            frame = with_extra_rows(frame, job["extra_rows"], Task(job["task"]))
            say(f"added {len(job['extra_rows'])} feedback rows to the dataset's", 0.03)
    else:
        say("reading the CSV", 0.03)
        target_name = job["target"]
        choices = ColumnChoices.of_job(job)
        text = [c for c, kind in choices.types.items() if kind == "categorical"]
        frame = apply_column_choices(read_csv(job["csv"], text), target_name, choices)
        if choices.drop or choices.types:
            say(f"columns dropped: {choices.drop}; typed by hand: {choices.types}", 0.04)
        if job.get("extra_rows"):
            frame = with_extra_rows(frame, job["extra_rows"], Task(job["task"]), target_name)
            say(f"added {len(job['extra_rows'])} feedback rows to the CSV's", 0.05)
    trained = train(
        frame,
        target_name,
        job["algorithm"],
        job["params"],
        Task(job["task"]),
        job["test_size"],
        report=say,
        categorical=[c for c, kind in job.get("column_types", {}).items() if kind == "categorical"],
    )
    del frame
    example = {"input": trained.example, "output": example_prediction(trained)}
    sio.dump(trained.estimator, Path(job["artifact"]))
    return {
        "task": trained.task.value,
        "algorithm": trained.algorithm,
        "params": trained.params,
        "features": [f.model_dump(mode="json") for f in trained.features],
        "classes": trained.classes,
        "metrics": trained.metrics,
        "target": trained.target,
        "n_train": trained.n_train,
        "n_test": trained.n_test,
        "example": example,
        "evaluation": trained.evaluation,
        "check_rows": trained.check_rows,
        "reference": trained.reference,
    }


def trained_from_job(result: dict[str, Any], artifact: Path) -> TrainedModel:
    """The parent's view of a finished ``train_job``: its metadata, the artifact by path."""
    return TrainedModel(
        estimator=artifact,
        task=Task(result["task"]),
        algorithm=str(result["algorithm"]),
        params=dict(result["params"]),
        features=[FeatureSpec.model_validate(f) for f in result["features"]],
        classes=None if result["classes"] is None else [str(c) for c in result["classes"]],
        metrics=dict(result["metrics"]),
        target=str(result["target"]),
        n_train=int(result["n_train"]),
        n_test=int(result["n_test"]),
        example=dict(result["example"]["input"]),
        evaluation=result.get("evaluation"),
        check_rows=result.get("check_rows") if isinstance(result.get("check_rows"), list) else None,
        reference=result.get("reference") if isinstance(result.get("reference"), dict) else None,
    )
