"""Training data: the built-in datasets, a CSV (its size checked from raw bytes, its header and
target read alone, or parsed whole), and typing its columns into the feature schema.

The parent process only ever calls ``check_csv_size`` and ``inspect_csv`` on an upload; the full
parse and ``infer_features`` run in the training process (``management_api.fitting.train_job``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets

from schemas import FeatureSpec, FeatureType, Task
from schemas.resources import DatasetInfo

MAX_CATEGORIES = 200
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


# --- CSV and schema inference -----------------------------------------------------------------

HEADER_PARSE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CsvLimits:
    """The largest CSV accepted for training; bigger ones are refused before any parse."""

    max_features: int = 1000
    max_rows: int = 1_000_000
    max_cells: int = 10_000_000


def check_csv_size(data: bytes, limits: CsvLimits) -> None:
    """Refuse a CSV with too many feature columns, rows or cells, from its raw bytes only.

    Columns are the header's fields, rows the lines after it: a byte scan (no parse), so a
    20,000-column or 10-million-row file costs milliseconds to refuse. Both counts are upper
    bounds (a comma or newline inside quotes counts too); the header is parsed exactly when the
    comma count alone is over the limit.
    """
    end = data.find(b"\n")
    header = data if end < 0 else data[:end]
    columns = header.count(b",") + 1
    if columns - 1 > limits.max_features and len(header) <= HEADER_PARSE_BYTES:
        text = header.decode("utf-8", errors="replace")
        columns = len(next(csv.reader([text]), [])) or 1
    features = columns - 1
    if features > limits.max_features:
        raise TrainingError(
            f"the CSV has {features:,} feature columns; at most {limits.max_features:,} "
            "are accepted (plus the target)",
            {"limit": "max_features", "max_features": limits.max_features, "features": features},
        )
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    rows = max(0, lines - 1)
    if rows > limits.max_rows:
        raise TrainingError(
            f"the CSV has {rows:,} rows; at most {limits.max_rows:,} are accepted",
            {"limit": "max_rows", "max_rows": limits.max_rows, "rows": rows},
        )
    cells = rows * columns
    if cells > limits.max_cells:
        raise TrainingError(
            f"the CSV has {cells:,} cells ({rows:,} rows of {columns:,} columns); at most "
            f"{limits.max_cells:,} are accepted",
            {"limit": "max_cells", "max_cells": limits.max_cells, "cells": cells},
        )


def _read_csv_failure(exc: Exception) -> TrainingError:
    return TrainingError(f"cannot read the CSV: {exc}")


def inspect_csv(data: bytes, target: str) -> tuple[list[str], pd.Series[Any] | None]:
    """The CSV's column names and its target column (``None`` when absent), parsing nothing else.

    What the upload route needs to check a job before queueing it; the full parse happens in the
    training process.
    """
    try:
        header = pd.read_csv(io.BytesIO(data), nrows=0, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise _read_csv_failure(exc) from exc
    columns = [str(c).strip() for c in header.columns]
    if len(set(columns)) != len(columns):
        raise TrainingError("the CSV has duplicate column names")
    if target not in columns:
        return columns, None
    try:
        frame = pd.read_csv(
            io.BytesIO(data), usecols=[columns.index(target)], skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise _read_csv_failure(exc) from exc
    return columns, frame.iloc[:, 0].rename(target)


def read_csv(data: bytes, text_columns: Collection[str] = ()) -> pd.DataFrame:
    """The whole CSV; ``text_columns`` are read as written (no number or boolean parsing)."""
    try:
        dtype: dict[Any, Any] | None = None
        if text_columns:
            header = pd.read_csv(io.BytesIO(data), nrows=0, skipinitialspace=True)
            dtype = {raw: str for raw in header.columns if str(raw).strip() in text_columns}
        frame = pd.read_csv(io.BytesIO(data), skipinitialspace=True, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise _read_csv_failure(exc) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.columns.duplicated().any():
        raise TrainingError("the CSV has duplicate column names")
    return frame


# --- the user's column choices ----------------------------------------------------------------


@dataclass(frozen=True)
class ColumnChoices:
    """What the wizard changed about a CSV's columns: some left out, some typed by hand
    (``numeric`` or ``categorical``) instead of inferred."""

    drop: Sequence[str] = ()
    types: Mapping[str, str] = field(default_factory=dict)

    def as_job(self) -> dict[str, Any]:
        return {"drop_columns": list(self.drop), "column_types": dict(self.types)}

    @classmethod
    def of_job(cls, job: dict[str, Any]) -> ColumnChoices:
        return cls(
            drop=list(job.get("drop_columns") or []), types=dict(job.get("column_types") or {})
        )


def check_column_choices(
    data: bytes, columns: list[str], target: str, choices: ColumnChoices
) -> None:
    """Refuse (``TrainingError``, a 400) choices naming a column the CSV lacks, dropping or typing
    the target, typing a dropped column, leaving no feature, or typing as numeric a column that
    holds text; reads only the columns typed as numeric."""
    known = set(columns)
    unknown = sorted({c for c in [*choices.drop, *choices.types] if c not in known})
    if unknown:
        raise TrainingError(
            f"no column named {', '.join(repr(c) for c in unknown[:5])} in the CSV",
            {"unknown_columns": unknown[:100], "columns": columns[:100]},
        )
    if target in choices.drop or target in choices.types:
        raise TrainingError(
            f"the target column {target!r} cannot be dropped or retyped; choose another target",
            {"target": target},
        )
    dropped = set(choices.drop)
    both = sorted(dropped & set(choices.types))
    if both:
        raise TrainingError(
            f"column {both[0]!r} is both dropped and given a type", {"columns": both[:100]}
        )
    features = [c for c in columns if c != target and c not in dropped]
    if not features:
        raise TrainingError(
            "every feature column is dropped; keep at least one besides the target",
            {"drop_columns": sorted(dropped)[:100]},
        )
    numeric = [c for c in columns if choices.types.get(c) == "numeric"]
    if not numeric:
        return
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            usecols=[columns.index(c) for c in numeric],
            skipinitialspace=True,
            dtype=str,
            keep_default_na=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise _read_csv_failure(exc) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    for name in numeric:
        bad = _not_numbers(frame[name])
        if bad is not None:
            raise TrainingError(
                f"column {name!r} cannot be numeric: it holds {bad!r}",
                {"column": name, "value": bad[:100]},
            )


def _not_numbers(series: pd.Series[Any]) -> str | None:
    """The first value that is not a number (``None`` when all are numbers or missing)."""
    values = series.dropna().astype(str).str.strip()
    values = values[values != ""]
    converted = pd.to_numeric(values, errors="coerce")
    bad = values[converted.isna()]
    return str(bad.iloc[0]) if len(bad) else None


def apply_column_choices(frame: pd.DataFrame, target: str, choices: ColumnChoices) -> pd.DataFrame:
    """The frame without the dropped columns (checked again: the training process trusts no
    one), the typed columns converted so ``infer_features`` types them as asked."""
    known = set(frame.columns)
    for name in [*choices.drop, *choices.types]:
        if name not in known or name == target:
            raise TrainingError(f"column {name!r} cannot be dropped or retyped", {"column": name})
    frame = frame.drop(columns=list(choices.drop))
    if frame.shape[1] < 2:
        raise TrainingError("every feature column is dropped; keep at least one besides the target")
    for name, kind in choices.types.items():
        series = frame[name]
        if kind == "numeric":
            if series.dtype == bool:
                bad: str | None = "true/false"
            elif pd.api.types.is_numeric_dtype(series):
                bad = None
            else:
                bad = _not_numbers(series)
            if bad is not None:
                raise TrainingError(
                    f"column {name!r} cannot be numeric: it holds {bad!r}", {"column": name}
                )
            text = series.map(lambda v: v.strip() if isinstance(v, str) else v)
            frame[name] = pd.to_numeric(text.replace("", np.nan))
        elif kind == "categorical":
            frame[name] = _as_labels(series)
        else:
            raise TrainingError(f"unknown column type {kind!r}", {"column": name})
    return frame


def _as_labels(series: pd.Series[Any]) -> pd.Series[Any]:
    """A column as text labels (``1.0`` → ``1``), missing values kept missing."""

    def label(value: Any) -> Any:
        if value is None or (isinstance(value, float) and value != value):
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()

    return series.map(label).astype(object)


def _as_boolean(series: pd.Series[Any]) -> pd.Series[Any] | None:
    if series.dtype == bool:
        return series
    if pd.api.types.is_numeric_dtype(series):
        return None
    values = series.dropna().astype(str).str.strip().str.lower()
    if len(values) and set(values.unique()) <= set(BOOLEAN_WORDS):
        return series.map(lambda v: None if pd.isna(v) else BOOLEAN_WORDS[str(v).strip().lower()])
    return None


def _as_category(
    name: str, series: pd.Series[Any], required: bool
) -> tuple[pd.Series[Any], FeatureSpec]:
    text = series.map(lambda v: None if pd.isna(v) else str(v).strip())
    categories = sorted({v for v in text.dropna()})
    if len(categories) > MAX_CATEGORIES:
        raise TrainingError(
            f"column {name!r} has {len(categories)} distinct text values; a category "
            f"may have at most {MAX_CATEGORIES} (drop free-text or id columns first)",
            {"column": name, "distinct_values": len(categories)},
        )
    spec = FeatureSpec(
        name=name, type=FeatureType.CATEGORY, required=required, categories=categories
    )
    return text.astype(object), spec


def infer_features(
    frame: pd.DataFrame, categorical: Collection[str] = ()
) -> tuple[pd.DataFrame, list[FeatureSpec]]:
    """Type every column (number, integer, boolean, category) and normalise the frame to match;
    the ``categorical`` columns (typed so by the user) are categories whatever they hold."""
    out: dict[str, pd.Series[Any]] = {}
    specs: list[FeatureSpec] = []
    for name in frame.columns:
        series = frame[name]
        required = not series.isna().any()
        boolean = None if name in categorical else _as_boolean(series)
        if name in categorical:
            out[name], spec = _as_category(name, series, required)
            specs.append(spec)
        elif boolean is not None:
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
            out[name], spec = _as_category(name, series, required)
            specs.append(spec)
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
