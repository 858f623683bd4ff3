"""Drift resources (issue 15): a version's reference profile and an API's drift report."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DriftRange = Literal["1h", "6h", "24h", "7d"]
DRIFT_BUCKET_SECONDS: dict[str, int] = {"1h": 300, "6h": 900, "24h": 3_600, "7d": 6 * 3_600}
"""Width of the drift series' buckets for each range (12 to 28 points)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferenceBin(_Model):
    lo: float | None
    hi: float | None
    share: float


class ReferenceCategory(_Model):
    value: str
    share: float


class ReferenceFeature(_Model):
    name: str
    type: str
    mean: float | None = None
    std: float | None = None
    missing_share: float = 0.0
    bins: list[ReferenceBin] | None = None
    categories: list[ReferenceCategory] | None = None


class ReferencePrediction(_Model):
    kind: Literal["classes", "values"]
    categories: list[ReferenceCategory] | None = None
    mean: float | None = None
    std: float | None = None
    bins: list[ReferenceBin] | None = None


class ReferenceProfile(_Model):
    rows: int
    source: Literal["training", "upload_reference"]
    features: list[ReferenceFeature]
    prediction: ReferencePrediction


class DriftQuery(_Model):
    range: DriftRange = "24h"
    version: int | None = Field(None, ge=1, description="version number; default: the served one")


class DriftShare(_Model):
    label: str
    share: float


class DriftPoint(_Model):
    t: str
    psi: float | None
    rows: int


class FeatureDrift(_Model):
    name: str
    type: str
    psi: float | None
    js: float | None
    status: Literal["ok", "warning", "drift", "no_data"]
    reference: list[DriftShare]
    live: list[DriftShare]
    series: list[DriftPoint]


class DriftThresholds(_Model):
    warning: float
    drift: float


class DriftReport(_Model):
    api_id: str
    version: int
    range: str
    reference_rows: int
    live_rows: int
    sampled_rows: int | None = Field(
        None,
        description="rows the scores are computed on: live_rows, or a deterministic sample of "
        "the window's requests when it holds more than the report parses",
    )
    thresholds: DriftThresholds
    features: list[FeatureDrift]
    prediction: FeatureDrift
