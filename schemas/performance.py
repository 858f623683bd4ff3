"""Live model performance from ground-truth feedback (issue 15): ``GET
/api/exports/{api_id}/performance`` (docs: /work/coord/ISSUE15_CONTRACT.md, docs/api-contract.md).

Feedback (``POST /api/predict/{api_id}/feedback`` on ingress) is joined with the request events by
request id; the latest report of a request is its truth. Figures describe the successful,
authenticated, non-shadow requests made in the range that have feedback.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PerformanceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionPerformance(PerformanceModel):
    """Live figures of one model version next to the test metrics it was trained with."""

    version: int = Field(description="the version's number (0: a version no longer stored)")
    n: int = Field(description="requests with feedback")
    accuracy: float | None = None
    """Classification: share of predictions equal to the truth."""
    f1: float | None = None
    """Classification: F1 as the test metric is computed (binary F1 of the last class for two
    classes, macro F1 over the labels seen otherwise)."""
    mae: float | None = None
    rmse: float | None = None
    test_metrics: dict[str, Any] = Field(default_factory=dict)


class PerformancePoint(PerformanceModel):
    """One bucket of one version (by request time); only buckets with feedback appear."""

    t: datetime
    version: int
    n: int
    accuracy: float | None = None
    mae: float | None = None


class Performance(PerformanceModel):
    api_id: str
    task: Literal["classification", "regression"]
    range: str
    matched: int = Field(description="requests of the range with feedback")
    unmatched: int = Field(
        description="requests reported on (feedback received in the range) that match no "
        "successful request of this API in the range: unknown or failed requests, another API's, "
        "or made before the range"
    )
    versions: list[VersionPerformance]
    series: list[PerformancePoint]
    bucket_seconds: int = Field(description="width of a series bucket")
