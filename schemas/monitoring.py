"""Monitoring responses of the management API (docs/api-contract.md, Monitoring), from ClickHouse.

Rates are fractions in [0, 1]; durations are milliseconds; times are UTC. Where nothing happened
counts are 0 and latencies 0.0 (never NaN, so the JSON stays valid).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Range = Literal["15m", "1h", "6h", "24h", "7d", "30d"]
Bucket = Literal["10s", "30s", "minute", "5m", "15m", "hour", "6h", "day"]
StatusFilter = Literal["success", "error", "4xx", "5xx"]
AlertMetric = Literal["cpu_percent", "memory_mb", "error_rate", "p95_ms"]

MarkerKind = Literal["created", "deploy", "key_rotated", "status"]

RANGE_SECONDS: dict[str, int] = {
    "15m": 900,
    "1h": 3_600,
    "6h": 6 * 3_600,
    "24h": 86_400,
    "7d": 7 * 86_400,
    "30d": 30 * 86_400,
}
BUCKET_SECONDS: dict[str, int] = {
    "10s": 10,
    "30s": 30,
    "minute": 60,
    "5m": 300,
    "15m": 900,
    "hour": 3_600,
    "6h": 6 * 3_600,
    "day": 86_400,
}
DEFAULT_BUCKET: dict[str, Bucket] = {
    "15m": "10s",
    "1h": "30s",
    "6h": "5m",
    "24h": "15m",
    "7d": "hour",
    "30d": "6h",
}
"""The bucket of each range when none is asked: at most 168 points (readable at a glance), finer
than a minute for the short ranges (those are read from the raw events)."""
MAX_POINTS = 1_440
"""At most this many buckets in a series (24 h by minute, the finest the 24 h range had)."""


class MonitoringModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiSummary(MonitoringModel):
    """Headline figures of one API: all-time totals and latency, recent request counts."""

    total_requests: int = 0
    requests_24h: int = 0
    requests_7d: int = 0
    success_rate: float = 0.0
    error_rate: float = 0.0
    avg_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    last_request_at: datetime | None = None
    cpu_percent: float = Field(
        0.0,
        description="share (%) of the predictors' CPU capacity (one core per worker) its "
        "predictions took over the last 24 h",
    )
    memory_mb: float = Field(
        0.0,
        description="memory of the model versions it serves, from the predictors' latest "
        "per-model samples (the most any one worker holds)",
    )


class HistogramBucket(MonitoringModel):
    """Requests whose latency is above the previous edge and at most ``le_ms`` (None: +inf)."""

    le_ms: float | None
    count: int


class RequestRecord(MonitoringModel):
    """One logged request, as request history and slowest-requests lists show it."""

    event_id: str
    ts: datetime
    status_code: int
    error_code: str = ""
    total_ms: float = 0.0
    inference_ms: float = 0.0
    model_version: str = ""
    prediction: str = ""
    input: str = ""
    output: str = ""
    worker_id: str = ""


class ShadowFigures(MonitoringModel):
    """A version's answers as a shadow over the range (raw shadow events, never returned to
    clients), and how often they agree with the serving version's answer to the same request."""

    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    avg_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    compared: int = Field(
        0, description="shadow answers compared: both it and the primary answered successfully"
    )
    agreed: int = Field(0, description="compared answers whose prediction equals the primary's")
    agreement_rate: float | None = Field(
        None, description="agreed / compared; null for a regressor or when nothing was compared"
    )


class VersionFigures(MonitoringModel):
    """The range figures of the requests one version answered (``ApiStats.by_version``)."""

    version_number: int | None = Field(
        description="the version's number; null for a version no longer in the model"
    )
    model_version_id: str
    requests: int = 0
    success_count: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    success_rate: float = 0.0
    error_rate: float = 0.0
    avg_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    shadow: ShadowFigures | None = Field(
        None, description="its answers as a shadow version, if it answered any in the range"
    )


class ApiStats(MonitoringModel):
    """Detailed figures of one API over a range, with histogram, slowest requests and resources."""

    range: Range
    total_requests: int = 0
    requests_24h: int = 0
    requests_7d: int = 0
    requests_in_range: int = 0
    success_count: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    rejected_unauthenticated: int = Field(
        0,
        description="requests of the range rejected before authentication (no key, a wrong key): "
        "anyone can send them, so they are not in the requests, error rate, latency or alerts",
    )
    success_rate: float = 0.0
    error_rate: float = 0.0
    avg_ms: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    histogram: list[HistogramBucket] = Field(default_factory=list)
    slowest: list[RequestRecord] = Field(default_factory=list)
    last_request_at: datetime | None = None
    cpu_percent: float = 0.0
    peak_cpu_percent: float = 0.0
    memory_mb: float = 0.0
    peak_memory_mb: float = 0.0
    by_version: list[VersionFigures] | None = Field(
        None, description="with by=version: the figures per version that answered, by number"
    )


class SeriesPoint(MonitoringModel):
    """One bucket of a time series (zeros where nothing happened)."""

    ts: datetime
    requests: int = 0
    successes: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    rejected_unauthenticated: int = 0
    avg_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_ms: float = 0.0
    requests_per_s: float = Field(0.0, description="requests / the bucket's seconds")


class Marker(MonitoringModel):
    """A change of the API at a time (recorded when the management API announced it): a version
    deployed (deploy, promote, rollback), its key rotated, its status changed, its creation."""

    ts: datetime
    kind: MarkerKind
    version_number: int | None = None
    detail: str = Field("", description="status: the new status (active, inactive)")
    actor: str = Field("", description="the user who made the change, when known")


class VersionSeries(MonitoringModel):
    """One version's points of a time series (``TimeSeries.by_version``)."""

    version_number: int | None
    model_version_id: str
    points: list[SeriesPoint]


class TimeSeries(MonitoringModel):
    """Every bucket of the range, oldest first."""

    range: Range
    bucket: Bucket
    step_seconds: int = Field(0, description="the bucket's length in seconds")
    points: list[SeriesPoint]
    by_version: list[VersionSeries] | None = Field(
        None, description="with by=version: every bucket of the range per version that answered"
    )
    markers: list[Marker] = Field(
        default_factory=list, description="deploys, key rotations and status changes in the range"
    )


class RequestPage(MonitoringModel):
    """One page of request history, newest first."""

    items: list[RequestRecord]
    page: int
    page_size: int
    total: int


class ValuePoint(MonitoringModel):
    ts: datetime
    value: float


class WorkerResources(MonitoringModel):
    """The latest sample of one predictor worker holding the API's model."""

    worker_id: str
    cpu_percent: float
    rss_mb: float
    loaded_models: list[str]
    last_seen: datetime


class Resources(MonitoringModel):
    """CPU (share of the predictors' capacity, one core per worker, taken by this API's
    predictions) and memory (of the model versions it serves, from the predictors' per-model
    samples; the most any one worker holds) over a range: ``cpu_percent`` is the range's
    average, peaks and points are per bucket (see ``management_api.queries``)."""

    cpu: list[ValuePoint]
    memory: list[ValuePoint]
    cpu_percent: float = 0.0
    peak_cpu_percent: float = 0.0
    memory_mb: float = 0.0
    peak_memory_mb: float = 0.0
    workers: list[WorkerResources] = Field(default_factory=list)


class Overview(MonitoringModel):
    """Figures over every API the caller can see."""

    total_apis: int = 0
    active_apis: int = 0
    total_requests: int = 0
    requests_24h: int = 0
    success_rate: float = 0.0
    avg_ms: float = 0.0
    p95_ms: float = 0.0


class Alert(MonitoringModel):
    """A threshold an API crosses now (computed by the management API from ApiStats)."""

    metric: AlertMetric
    value: float
    threshold: float
    severity: Literal["warning", "critical"]
    message: str


class AlertList(MonitoringModel):
    items: list[Alert]
