"""Training: built-in datasets, CSV schema inference, the algorithm catalogue, and one fit.

Everything here is plain synchronous code run in a worker thread; ``train`` reports progress and
log lines through callbacks. The estimator is always a ``Pipeline`` whose first step is a
``ColumnTransformer`` over the raw feature columns, so a predictor feeds it a DataFrame of the
request's fields as they arrive (categories as strings, one-hot encoded inside the pipeline).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
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

from schemas import FeatureSpec, FeatureType, Task
from schemas.resources import AlgorithmInfo, AlgorithmParam, DatasetInfo

MAX_CATEGORIES = 200
MIN_ROWS = 10
BOOLEAN_WORDS = {"true": True, "false": False}


class TrainingError(ValueError):
    """The data or parameters cannot be trained on; the message says why, for the user."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


# --- built-in datasets ------------------------------------------------------------------------

DATASETS: dict[str, tuple[Callable[..., Any], Task, str]] = {
    "iris": (
        sk_datasets.load_iris,
        Task.CLASSIFICATION,
        "Iris flowers: 3 species from 4 measurements",
    ),
    "wine": (
        sk_datasets.load_wine,
        Task.CLASSIFICATION,
        "Wine cultivars from 13 chemical analyses",
    ),
    "breast_cancer": (
        sk_datasets.load_breast_cancer,
        Task.CLASSIFICATION,
        "Breast tumours, malignant or benign, from 30 cell-nucleus measurements",
    ),
    "diabetes": (
        sk_datasets.load_diabetes,
        Task.REGRESSION,
        "Diabetes progression after one year from 10 baseline variables",
    ),
    "digits": (
        sk_datasets.load_digits,
        Task.CLASSIFICATION,
        "Handwritten digits 0-9 as 8x8 pixel grids",
    ),
}


def column_name(raw: str) -> str:
    """A JSON-friendly feature name: ``sepal length (cm)`` → ``sepal_length_cm``."""
    name = re.sub(r"[^0-9A-Za-z]+", "_", raw).strip("_").lower()
    return name or "feature"


def load_dataset(name: str) -> tuple[pd.DataFrame, pd.Series[Any], Task]:
    """A built-in dataset as a frame of named features and a target (class names as labels)."""
    if name not in DATASETS:
        raise TrainingError(f"unknown dataset {name!r}", {"known": sorted(DATASETS)})
    loader, task, _ = DATASETS[name]
    bunch = loader()
    names = (
        [column_name(str(n)) for n in bunch.feature_names]
        if hasattr(bunch, "feature_names")
        else []
    )
    if not names:
        names = [f"pixel_{i}" for i in range(bunch.data.shape[1])]
    frame = pd.DataFrame(bunch.data, columns=names)
    if name == "digits":
        frame = frame.astype("int64")
    if task == Task.CLASSIFICATION:
        labels = np.asarray(bunch.target_names)[bunch.target]
        target = pd.Series([str(v) for v in labels], name="target")
    else:
        target = pd.Series(bunch.target.astype(float), name="target")
    return frame, target, task


def dataset_infos() -> list[DatasetInfo]:
    shapes = {
        "iris": (150, 4),
        "wine": (178, 13),
        "breast_cancer": (569, 30),
        "diabetes": (442, 10),
        "digits": (1797, 64),
    }
    return [
        DatasetInfo(
            name=name,
            task=task,
            n_rows=shapes[name][0],
            n_features=shapes[name][1],
            description=text,
        )
        for name, (_, task, text) in DATASETS.items()
    ]


# --- algorithms -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Algorithm:
    name: str
    label: str
    tasks: tuple[Task, ...]
    params: tuple[AlgorithmParam, ...]
    build: Callable[[Task, dict[str, Any]], Any]

    def info(self) -> AlgorithmInfo:
        return AlgorithmInfo(
            name=self.name, label=self.label, tasks=list(self.tasks), params=list(self.params)
        )


def _forest(task: Task, p: dict[str, Any]) -> Any:
    cls = RandomForestClassifier if task == Task.CLASSIFICATION else RandomForestRegressor
    return cls(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"] or None,
        min_samples_leaf=p["min_samples_leaf"],
        random_state=0,
    )


def _boosting(task: Task, p: dict[str, Any]) -> Any:
    cls = GradientBoostingClassifier if task == Task.CLASSIFICATION else GradientBoostingRegressor
    return cls(
        n_estimators=p["n_estimators"],
        learning_rate=p["learning_rate"],
        max_depth=p["max_depth"],
        random_state=0,
    )


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        Algorithm(
            "logistic_regression",
            "Logistic regression",
            (Task.CLASSIFICATION,),
            (
                AlgorithmParam(
                    name="C",
                    type="float",
                    default=1.0,
                    min=1e-4,
                    max=1e4,
                    description="inverse regularisation strength",
                ),
                AlgorithmParam(
                    name="max_iter",
                    type="int",
                    default=1000,
                    min=10,
                    max=10000,
                    description="solver iterations",
                ),
            ),
            lambda task, p: LogisticRegression(C=p["C"], max_iter=p["max_iter"]),
        ),
        Algorithm(
            "linear_regression",
            "Linear regression",
            (Task.REGRESSION,),
            (
                AlgorithmParam(
                    name="fit_intercept",
                    type="choice",
                    default=True,
                    choices=[True, False],
                    description="fit an intercept",
                ),
            ),
            lambda task, p: LinearRegression(fit_intercept=p["fit_intercept"]),
        ),
        Algorithm(
            "random_forest",
            "Random forest",
            (Task.CLASSIFICATION, Task.REGRESSION),
            (
                AlgorithmParam(
                    name="n_estimators",
                    type="int",
                    default=100,
                    min=1,
                    max=1000,
                    description="trees",
                ),
                AlgorithmParam(
                    name="max_depth",
                    type="int",
                    default=0,
                    min=0,
                    max=100,
                    description="tree depth (0 = unlimited)",
                ),
                AlgorithmParam(
                    name="min_samples_leaf",
                    type="int",
                    default=1,
                    min=1,
                    max=1000,
                    description="rows per leaf",
                ),
            ),
            _forest,
        ),
        Algorithm(
            "gradient_boosting",
            "Gradient boosting",
            (Task.CLASSIFICATION, Task.REGRESSION),
            (
                AlgorithmParam(
                    name="n_estimators",
                    type="int",
                    default=100,
                    min=1,
                    max=1000,
                    description="boosting stages",
                ),
                AlgorithmParam(
                    name="learning_rate",
                    type="float",
                    default=0.1,
                    min=1e-4,
                    max=1.0,
                    description="shrinkage",
                ),
                AlgorithmParam(
                    name="max_depth", type="int", default=3, min=1, max=20, description="tree depth"
                ),
            ),
            _boosting,
        ),
    ]
}


def resolve_params(
    algorithm: str, task: Task, given: dict[str, Any]
) -> tuple[Algorithm, dict[str, Any]]:
    """Check the algorithm fits the task and coerce its parameters; errors name every problem."""
    algo = ALGORITHMS.get(algorithm)
    if algo is None:
        raise TrainingError(f"unknown algorithm {algorithm!r}", {"known": sorted(ALGORITHMS)})
    if task not in algo.tasks:
        raise TrainingError(
            f"{algo.label} does not do {task.value}",
            {
                "algorithm": algorithm,
                "task": task.value,
                "supported_tasks": [t.value for t in algo.tasks],
            },
        )
    known = {p.name: p for p in algo.params}
    problems: dict[str, str] = {}
    for name in given:
        if name not in known:
            problems[name] = "unknown parameter"
    resolved: dict[str, Any] = {}
    for name, spec in known.items():
        value: Any = given.get(name, spec.default)
        try:
            if spec.type == "int":
                if isinstance(value, bool) or float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif spec.type == "float":
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError
            elif spec.choices is not None and value not in spec.choices:
                raise ValueError
        except (TypeError, ValueError):
            problems[name] = f"expected {spec.type}" + (
                f" in {spec.choices}" if spec.choices else ""
            )
            continue
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            problems[name] = f"must be between {spec.min} and {spec.max}"
            continue
        resolved[name] = value
    if problems:
        raise TrainingError("invalid algorithm parameters", {"params": problems})
    return algo, resolved


# --- CSV and schema inference -----------------------------------------------------------------


def read_csv(data: bytes) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(data), skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise TrainingError(f"cannot read the CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.columns.duplicated().any():
        raise TrainingError("the CSV has duplicate column names")
    return frame


def _as_boolean(series: pd.Series[Any]) -> pd.Series[Any] | None:
    if series.dtype == bool:
        return series
    if pd.api.types.is_numeric_dtype(series):
        return None
    values = series.dropna().astype(str).str.strip().str.lower()
    if len(values) and set(values.unique()) <= set(BOOLEAN_WORDS):
        return series.map(lambda v: None if pd.isna(v) else BOOLEAN_WORDS[str(v).strip().lower()])
    return None


def infer_features(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[FeatureSpec]]:
    """Type every column (number, integer, boolean, category) and normalise the frame to match."""
    out: dict[str, pd.Series[Any]] = {}
    specs: list[FeatureSpec] = []
    for name in frame.columns:
        series = frame[name]
        required = not series.isna().any()
        boolean = _as_boolean(series)
        if boolean is not None:
            out[name] = boolean.astype(float)
            specs.append(FeatureSpec(name=name, type=FeatureType.BOOLEAN, required=required))
        elif pd.api.types.is_integer_dtype(series):
            out[name] = series.astype(float)
            specs.append(FeatureSpec(name=name, type=FeatureType.INTEGER, required=required))
        elif pd.api.types.is_numeric_dtype(series):
            values = series.dropna()
            integral = len(values) > 0 and bool((values == values.round()).all())
            out[name] = series.astype(float)
            specs.append(
                FeatureSpec(
                    name=name,
                    type=FeatureType.INTEGER if integral else FeatureType.NUMBER,
                    required=required,
                )
            )
        else:
            text = series.map(lambda v: None if pd.isna(v) else str(v).strip())
            categories = sorted({v for v in text.dropna()})
            if len(categories) > MAX_CATEGORIES:
                raise TrainingError(
                    f"column {name!r} has {len(categories)} distinct text values; a category "
                    f"may have at most {MAX_CATEGORIES} (drop free-text or id columns first)",
                    {"column": name, "distinct_values": len(categories)},
                )
            out[name] = text.astype(object)
            specs.append(
                FeatureSpec(
                    name=name, type=FeatureType.CATEGORY, required=required, categories=categories
                )
            )
    return pd.DataFrame(out, index=frame.index), specs


def infer_task(target: pd.Series[Any]) -> Task:
    """Classification for text, booleans or few distinct integers; regression otherwise."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or values.dtype == bool:
        return Task.CLASSIFICATION
    if pd.api.types.is_integer_dtype(values) or bool((values == values.round()).all()):
        if values.nunique() <= max(20, int(len(values) * 0.05)):
            return Task.CLASSIFICATION
    return Task.REGRESSION


def target_labels(target: pd.Series[Any]) -> pd.Series[Any]:
    """Class labels as strings (``1.0`` → ``1``), so classes read the same in JSON and in docs."""

    def label(value: Any) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()

    return target.map(label)


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

    estimator: Pipeline
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
) -> TrainedModel:
    """Fit a pipeline on ``frame`` predicting ``target_name`` and score it on a held-out split."""
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
    x, features = infer_features(raw_x)
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
