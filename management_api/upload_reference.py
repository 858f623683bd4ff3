"""The reference profile of an uploaded version (issue 15), from a reference CSV the user gives.

The CSV is untrusted, and so is the model: both are opened only in a limited child process
(``profile_reference_file``, run by ``infra.sandbox.run_limited``), the model through the same
checked loader as an upload (``infra.model_store.load_checked``). The child reads the rows,
checks them against the version's features (missing columns, values of the wrong type), builds
the feature profile as training does (``management_api.reference.build_profile``) and the
prediction profile from the model's own answers on those rows. It answers JSON: the profile,
or ``{"refused": ...}`` saying what is wrong; the parent re-validates the profile's shape.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from infra.model_store import ArchiveLimits, ModelStoreError, load_checked
from management_api.datasets import TrainingError, read_csv
from management_api.errors import InvalidInput
from management_api.reference import boolean_label, build_profile
from schemas import FeatureSpec, FeatureType, Task
from schemas.drift import ReferenceProfile

SOURCE = "upload_reference"
MAX_REPORTED = 20
"""Columns (and example values) named in a refusal."""
REFERENCE_RESULT_BYTES = 4 * 1024 * 1024
"""Largest answer the child may send (1,000 features of 10 bins or 30 categories fit)."""


@contextmanager
def _object_strings() -> Iterator[None]:
    """pandas 3 keeps strings in pyarrow arrays, whose allocator (and its threads' malloc
    arenas) wants more address space than this child's limit leaves: 300-row CSVs failed with
    "malloc of size 64 failed" about one time in three. Plain object columns here instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the option is deprecated, not yet gone (pandas 3.1)
        with pd.option_context("future.infer_string", False):
            yield


def _refused(message: str, **details: Any) -> dict[str, Any]:
    return {"refused": {"message": message, "details": details}}


def _typed(frame: pd.DataFrame, features: list[FeatureSpec]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The feature columns as the API receives them (numbers, booleans, category strings) and,
    per mistyped column, an example of a value that is not of its type."""
    typed: dict[str, Any] = {}
    mistyped: dict[str, str] = {}
    for spec in features:
        column = frame[spec.name]
        present = column.notna()
        if spec.type in (FeatureType.NUMBER, FeatureType.INTEGER):
            numbers = pd.to_numeric(column, errors="coerce")
            bad = present & numbers.isna()
            if spec.type == FeatureType.INTEGER:
                bad |= numbers.notna() & (numbers % 1 != 0)
            typed[spec.name] = numbers.astype(float)
        elif spec.type == FeatureType.BOOLEAN:
            labels = column.map(lambda v: boolean_label(v) if v is not None else None)
            bad = present & labels.isna()
            typed[spec.name] = labels.map({"true": True, "false": False}).astype(object)
        else:
            text = column.map(lambda v: str(v).strip(), na_action="ignore")
            bad = present & False
            if spec.categories:
                bad = present & ~text.isin(spec.categories)
            typed[spec.name] = text.astype(object).where(present, None)
        if bad.any():
            example = str(column[bad].iloc[0])[:40]
            mistyped[spec.name] = f"{spec.type.value} expected, found {example!r}"
    return pd.DataFrame(typed, index=frame.index), mistyped


def profile_reference_file(
    model_path: str,
    csv_path: str,
    features: list[dict[str, Any]],
    task: str,
    limits: dict[str, int],
) -> dict[str, Any]:
    """Child-process entry: ``{"profile": ...}`` or ``{"refused": {"message", "details"}}``.

    Columns other than the features (the target among them) are ignored."""
    with _object_strings():
        return _profile(model_path, csv_path, features, task, limits)


def _profile(
    model_path: str,
    csv_path: str,
    features: list[dict[str, Any]],
    task: str,
    limits: dict[str, int],
) -> dict[str, Any]:
    specs = [FeatureSpec.model_validate(f) for f in features]
    text_columns = [s.name for s in specs if s.type in (FeatureType.CATEGORY, FeatureType.BOOLEAN)]
    try:
        frame = read_csv(Path(csv_path).read_bytes(), text_columns)
    except TrainingError as exc:
        return _refused(f"reference CSV: {exc}")
    missing = [s.name for s in specs if s.name not in frame.columns]
    if missing:
        return _refused(
            "the reference CSV lacks feature column(s) "
            + ", ".join(repr(m) for m in missing[:MAX_REPORTED]),
            missing=missing[:MAX_REPORTED],
            missing_count=len(missing),
        )
    if len(frame) == 0:
        return _refused("the reference CSV has no rows")
    x, mistyped = _typed(frame, specs)
    if mistyped:
        shown = dict(list(mistyped.items())[:MAX_REPORTED])
        return _refused(
            "the reference CSV has values of the wrong type in column(s) "
            + ", ".join(repr(m) for m in shown),
            mistyped=shown,
            mistyped_count=len(mistyped),
        )
    # Predictions on the rows the API would accept: every required feature present.
    required = [s.name for s in specs if s.required]
    complete = x[x[required].notna().all(axis=1)] if required else x
    if len(complete) == 0:
        return _refused("no row of the reference CSV has every required feature")
    estimator = load_checked(Path(model_path).read_bytes(), ArchiveLimits(**limits))
    try:
        predicted = estimator.predict(complete[[s.name for s in specs]])
    except (ModelStoreError, MemoryError):
        raise
    except Exception as exc:
        return _refused(
            f"the model could not predict on the reference rows: {type(exc).__name__}: "
            f"{str(exc)[:200]}"
        )
    values = [v.item() if isinstance(v, np.generic) else v for v in np.asarray(predicted).ravel()]
    if Task(task) == Task.REGRESSION:
        try:
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            return _refused("the model's predictions are not numbers; is it a regressor?")
        if not any(math.isfinite(v) for v in numbers):
            return _refused("the model predicted no finite value on the reference rows")
        values = numbers
    return {"profile": build_profile(x, specs, Task(task), values, source=SOURCE)}


def profile_of(answer: Any) -> dict[str, Any]:
    """The child's answer as a stored profile, or the 400 saying what is wrong with the CSV."""
    if isinstance(answer, dict) and isinstance(answer.get("refused"), dict):
        refused = answer["refused"]
        details = refused.get("details")
        raise InvalidInput(
            str(refused.get("message") or "the reference CSV was refused")[:1000],
            details={"field": "reference", **(details if isinstance(details, dict) else {})},
        )
    profile = answer.get("profile") if isinstance(answer, dict) else None
    try:
        checked = ReferenceProfile.model_validate(profile)
    except ValidationError:
        raise InvalidInput(
            "the reference CSV could not be profiled", details={"field": "reference"}
        ) from None
    if checked.source != SOURCE:
        raise InvalidInput(
            "the reference CSV could not be profiled", details={"field": "reference"}
        )
    return checked.model_dump(mode="json")
