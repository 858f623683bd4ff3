"""Reference profiles (issue 15): what a version's training inputs and test-split predictions
looked like, and the drift scores between such a profile and live counts.

Pure numpy/pandas, no I/O: the training child builds the profile (``build_profile``) next to the
fit, the parent stores it with the version (``model_versions.reference``, alembic 0011), and the
drift route (``management_api.drift``) compares it with the counts ClickHouse returns.

Bins: numbers get up to ``NUMBER_BINS`` quantile bins of the training values; bin ``i`` holds
``edges[i-1] < x <= edges[i]`` (first open below, last open above), the rule ClickHouse applies
as ``arrayCount(e -> x > e, edges)``. Missing values are counted apart (``missing_share``) and
left out of the bins on both sides. Categories keep their ``MAX_CATEGORIES`` most frequent values
plus ``OTHER`` for the rest (live values never seen in training fall there too).

Scores follow Evidently's defaults: PSI with empty bins replaced by ``EPSILON`` (0.0001) on both
sides, Jensen-Shannon *distance* (the square root of the divergence) in base 2, so in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from schemas import FeatureSpec, FeatureType, Task

NUMBER_BINS = 10
MAX_CATEGORIES = 30
OTHER = "(other)"
EPSILON = 0.0001
WARNING_PSI = 0.1
DRIFT_PSI = 0.25
TRUE_WORDS = frozenset({"true", "1", "1.0", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "0", "0.0", "no", "n", "f"})


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def number_bins(values: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Quantile edges of ``values`` (finite, non-empty) and the share of values in each bin."""
    quantiles = np.quantile(values, np.linspace(0, 1, NUMBER_BINS + 1)[1:-1])
    edges = sorted({float(q) for q in quantiles})
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    total = max(1, int(counts.sum()))
    bounds: list[float | None] = [None, *edges, None]
    return {
        "edges": edges,
        "bins": [
            {"lo": bounds[i], "hi": bounds[i + 1], "share": round(int(c) / total, 6)}
            for i, c in enumerate(counts)
        ],
    }


def category_shares(labels: Sequence[str]) -> list[dict[str, Any]]:
    """The most frequent labels with their shares, the rest summed under ``OTHER``."""
    counts = pd.Series(list(labels), dtype="object").value_counts()
    total = max(1, int(counts.sum()))
    top = counts.head(MAX_CATEGORIES)
    out = [{"value": str(v), "share": round(int(c) / total, 6)} for v, c in top.items()]
    rest = int(counts.iloc[MAX_CATEGORIES:].sum())
    if rest:
        out.append({"value": OTHER, "share": round(rest / total, 6)})
    return out


def boolean_label(value: Any) -> str | None:
    """``true``/``false`` for what a client may send as a boolean, None for anything else."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return "true"
    if word in FALSE_WORDS:
        return "false"
    return None


def feature_profile(name: str, kind: FeatureType, column: pd.Series[Any]) -> dict[str, Any]:
    total = max(1, len(column))
    out: dict[str, Any] = {
        "name": name,
        "type": kind.value,
        "mean": None,
        "std": None,
        "missing_share": 0.0,
        "bins": None,
        "categories": None,
    }
    if kind in (FeatureType.NUMBER, FeatureType.INTEGER):
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        finite = numbers[np.isfinite(numbers)]
        out["missing_share"] = round(1 - len(finite) / total, 6)
        if len(finite):
            out["mean"] = _finite(float(finite.mean()))
            out["std"] = _finite(float(finite.std()))
            out["bins"] = number_bins(finite)["bins"]
        return out
    if kind == FeatureType.BOOLEAN:
        labels = [b for b in (boolean_label(v) for v in column) if b is not None]
    else:
        labels = [str(v).strip() for v in column if v is not None and not pd.isna(v)]
    out["missing_share"] = round(1 - len(labels) / total, 6)
    out["categories"] = category_shares(labels) if labels else []
    return out


def build_profile(
    x: pd.DataFrame,
    features: Sequence[FeatureSpec],
    task: Task,
    predicted: Sequence[Any],
    source: str = "training",
) -> dict[str, Any]:
    """The reference profile of the contract (docs: ISSUE15 contract) for inputs ``x`` (the
    training rows, raw columns) and the test split's ``predicted`` values."""
    profile: dict[str, Any] = {
        "rows": len(x),
        "source": source,
        "features": [
            feature_profile(spec.name, spec.type, x[spec.name])
            for spec in features
            if spec.name in x.columns
        ],
    }
    if task == Task.CLASSIFICATION:
        profile["prediction"] = {
            "kind": "classes",
            "categories": category_shares([str(p) for p in predicted]),
        }
    else:
        values = np.asarray(predicted, dtype=float)
        values = values[np.isfinite(values)]
        profile["prediction"] = {
            "kind": "values",
            "mean": _finite(float(values.mean())) if len(values) else None,
            "std": _finite(float(values.std())) if len(values) else None,
            "bins": number_bins(values)["bins"] if len(values) else [],
        }
    return profile


def edges_of(bins: Sequence[dict[str, Any]]) -> list[float]:
    """The inner edges of stored bins (each bin's upper bound but the last's)."""
    return [float(b["hi"]) for b in bins[:-1]]


# --- scores -------------------------------------------------------------------------------------


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins (shares or counts;
    each is normalized), empty bins taken as ``EPSILON`` as Evidently does."""
    ref = _shares(reference)
    cur = _shares(live)
    total = 0.0
    for r, c in zip(ref, cur, strict=True):
        r = r or EPSILON
        c = c or EPSILON
        total += (c - r) * math.log(c / r)
    return total


def js_distance(reference: Sequence[float], live: Sequence[float]) -> float:
    """Jensen-Shannon distance in base 2 (scipy's ``jensenshannon(p, q, base=2)``), in [0, 1]."""
    ref = _shares(reference)
    cur = _shares(live)
    divergence = 0.0
    for r, c in zip(ref, cur, strict=True):
        m = (r + c) / 2
        if r > 0:
            divergence += r * math.log2(r / m) / 2
        if c > 0:
            divergence += c * math.log2(c / m) / 2
    return math.sqrt(max(0.0, divergence))


def status_of(score: float | None) -> str:
    if score is None:
        return "no_data"
    if score >= DRIFT_PSI:
        return "drift"
    if score >= WARNING_PSI:
        return "warning"
    return "ok"


def _shares(values: Sequence[float]) -> list[float]:
    total = float(sum(values))
    if total <= 0:
        return [0.0 for _ in values]
    return [float(v) / total for v in values]
