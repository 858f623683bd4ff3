"""Bring your own model: what an uploaded .skops file says about itself, as a proposal for the
upload form. The file is checked exactly as an upload is (``Catalog.verify``: archive bounds here,
types and load in a limited child process); only the plain facts the child answers are read."""

from __future__ import annotations

from typing import Any

from management_api.catalog import Catalog
from management_api.errors import InvalidInput
from schemas import FeatureSpec, FeatureType, Task
from schemas.resources import ModelInspection

TASKS = {"classifier": Task.CLASSIFICATION, "regressor": Task.REGRESSION}
MAX_PROPOSED_FEATURES = 10_000
"""Most input columns (and classes) a proposal lists. ``n_features_in_`` is a plain int in the
file: a 9 KB file claiming 2,000,000 inputs must not make the API build 2,000,000 features."""


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [str(v) for v in value]


def _bounded(what: str, detail: str, count: int, values: Any) -> None:
    """400 when the file declares more than ``MAX_PROPOSED_FEATURES`` of ``what``."""
    declared = max(count, len(values) if isinstance(values, list) else 0)
    if declared > MAX_PROPOSED_FEATURES:
        raise InvalidInput(
            f"the model declares {declared:,} {what}; the upload form proposes at most "
            f"{MAX_PROPOSED_FEATURES:,}",
            details={detail: declared, "max": MAX_PROPOSED_FEATURES},
        )


def inspection_of(facts: dict[str, Any]) -> ModelInspection:
    """The upload form's proposal from ``describe``'s facts (answered by the untrusted child, so
    every field is re-typed here)."""
    raw_count = facts.get("n_features_in")
    count = raw_count if isinstance(raw_count, int) and raw_count >= 0 else None
    raw_names, raw_classes = facts.get("feature_names_in"), facts.get("classes")
    _bounded("input features", "n_features_in", count or 0, raw_names)
    _bounded("classes", "n_classes", 0, raw_classes)
    classes = _strings(raw_classes)
    names = _strings(raw_names)
    found = names is not None
    if names is None:
        names = [f"x{i}" for i in range(count or 0)]
    raw_categories = facts.get("categories")
    categories = raw_categories if isinstance(raw_categories, dict) else {}
    features: list[FeatureSpec] = []
    for name in names:
        values = _strings(categories.get(name))
        if values:
            features.append(FeatureSpec(name=name, type=FeatureType.CATEGORY, categories=values))
        else:
            features.append(FeatureSpec(name=name, type=FeatureType.NUMBER))
    task = TASKS.get(str(facts.get("estimator_type")))
    if task is None and classes is not None:
        task = Task.CLASSIFICATION
    return ModelInspection(
        algorithm=str(facts.get("algorithm") or "model"),
        task=task,
        has_predict_proba=bool(facts.get("has_predict_proba")),
        classes=classes,
        n_features_in=count,
        feature_names_found=found,
        features=features,
    )


async def inspect_upload(
    catalog: Catalog, data: bytes, user_id: str | None = None
) -> ModelInspection:
    """Verify ``data`` like an upload (same refusals, same limits, and ``user_id``'s files one
    at a time) and propose its schema; nothing is stored."""
    return inspection_of(await catalog.verify(data, user_id))
