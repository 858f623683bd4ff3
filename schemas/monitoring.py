"""Monitoring responses of the management API (docs/api-contract.md, Monitoring), from ClickHouse.

Rates are fractions in [0, 1]; durations are milliseconds; times are UTC. Where nothing happened
counts are 0 and latencies 0.0 (never NaN, so the JSON stays valid).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Range = Literal["24h", "7d", "30d"]
Bucket = Literal["minute", "hour", "day"]
StatusFilter = Literal["success", "error", "4xx", "5xx"]
AlertMetric = Literal["cpu_percent", "memory_mb", "error_rate", "p95_ms"]

RANGE_SECONDS: dict[str, int] = {"24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
BUCKET_SECONDS: dict[str, int] = {"minute": 60, "hour": 3_600, "day": 86_400}


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


class SeriesPoint(MonitoringModel):
    """One bucket of a time series (zeros where nothing happened)."""

    ts: datetime
    requests: int = 0
    successes: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    avg_ms: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_ms: float = 0.0


class TimeSeries(MonitoringModel):
    """Every bucket of the range, oldest first."""

    range: Range
    bucket: Bucket
    points: list[SeriesPoint]


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
    """CPU (percent of one core spent on this API) and memory (RSS of its workers) over a range."""

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
