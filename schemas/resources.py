"""Resources of the management API (docs/api-contract.md): users, models, training, exported APIs.

No I/O lives here. Request models (``*Create``, ``*Update``) forbid unknown fields so a typo is a
clear 400 instead of a silently ignored setting.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.messages import ApiStatus, FeatureSpec, Task
from schemas.monitoring import ApiSummary, Bucket, Range, StatusFilter

JsonValue = Any


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class RequestModel(BaseModel):
    """Base of every request body and query string: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


# --- accounts ---------------------------------------------------------------------------------


class UserPublic(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: str
    username: str
    role: Role
    created_at: datetime


class UserList(BaseModel):
    items: list[UserPublic]


class TokenRequest(RequestModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    user: UserPublic


class UserCreate(RequestModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: Role = Role.USER


class UserUpdate(RequestModel):
    password: str | None = Field(None, min_length=8, max_length=256)
    role: Role | None = None


# --- models and training ----------------------------------------------------------------------


class DatasetInfo(BaseModel):
    name: str
    task: Task
    n_rows: int
    n_features: int
    description: str


class DatasetList(BaseModel):
    items: list[DatasetInfo]


class AlgorithmParam(BaseModel):
    name: str
    type: Literal["int", "float", "choice"]
    default: JsonValue = None
    min: float | None = None
    max: float | None = None
    choices: list[JsonValue] | None = None
    description: str = ""


class AlgorithmInfo(BaseModel):
    name: str
    label: str
    tasks: list[Task]
    params: list[AlgorithmParam]


class AlgorithmList(BaseModel):
    items: list[AlgorithmInfo]


class TrainBuiltinRequest(RequestModel):
    """Train on a built-in scikit-learn dataset (JSON body of ``POST /api/models/train``)."""

    name: str = Field(min_length=1, max_length=100)
    dataset: Literal["iris", "wine", "breast_cancer", "diabetes", "digits"]
    algorithm: str
    params: dict[str, JsonValue] = Field(default_factory=dict)
    test_size: float = Field(0.2, gt=0.05, lt=0.9)


class TrainCsvForm(RequestModel):
    """Train on an uploaded CSV (multipart ``POST /api/models/train``; ``file`` is the CSV)."""

    name: str = Field(min_length=1, max_length=100)
    target: str = Field(min_length=1)
    algorithm: str
    params: dict[str, JsonValue] = Field(default_factory=dict)
    task: Task | None = None
    test_size: float = Field(0.2, gt=0.05, lt=0.9)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrainingJob(BaseModel):
    id: str
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    model_name: str
    model_id: str | None = None
    version_number: int | None = None
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class TrainingLogs(BaseModel):
    lines: list[str]
    next: int
    status: JobStatus


class ModelVersionPublic(BaseModel):
    """One trained (or uploaded) version of a model: what it was trained on and how it scored."""

    id: str = Field(description="model store key of this version")
    number: int
    model_id: str
    algorithm: str
    params: dict[str, JsonValue]
    metrics: dict[str, float | None]
    features: list[FeatureSpec]
    classes: list[str] | None
    target: str
    n_train: int
    n_test: int
    created_at: datetime
    source: str


class ModelPublic(BaseModel):
    id: str
    name: str
    task: Task
    owner_id: str
    created_at: datetime
    latest_version: int
    versions: list[ModelVersionPublic]


class ModelList(BaseModel):
    items: list[ModelPublic]


class ModelUploadForm(RequestModel):
    """Multipart form of ``POST /api/models/upload`` (``file`` is the .skops artifact)."""

    name: str = Field(min_length=1, max_length=100)
    task: Task
    features: list[FeatureSpec] = Field(min_length=1)
    classes: list[str] | None = None
    target: str = "target"


# --- exported APIs ----------------------------------------------------------------------------


class AlertThresholds(BaseModel):
    """Per-API alert thresholds (defaults come from the service settings)."""

    model_config = ConfigDict(extra="forbid")

    cpu_percent: float = Field(80.0, ge=0)
    memory_mb: float = Field(1024.0, ge=0)
    error_rate: float = Field(0.05, ge=0, le=1)
    p95_ms: float = Field(500.0, ge=0)


class AlertThresholdsUpdate(RequestModel):
    cpu_percent: float | None = Field(None, ge=0)
    memory_mb: float | None = Field(None, ge=0)
    error_rate: float | None = Field(None, ge=0, le=1)
    p95_ms: float | None = Field(None, ge=0)


class ApiCreate(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    version: int | None = Field(None, ge=1, description="model version number; latest if absent")
    rate_limit_per_minute: int = Field(100, ge=1, le=1_000_000)
    alert_thresholds: AlertThresholdsUpdate | None = None
    log_payloads: bool = True


class ApiUpdate(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    rate_limit_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    alert_thresholds: AlertThresholdsUpdate | None = None
    log_payloads: bool | None = None


class ApiStatusUpdate(RequestModel):
    status: ApiStatus


class ApiDeploy(RequestModel):
    version: int = Field(ge=1)


class ApiPublic(BaseModel):
    """An exported API as its owner sees it (the key itself only appears once, elsewhere)."""

    id: str
    name: str
    model_id: str
    model_name: str
    model_version: int
    model_version_id: str
    task: Task
    status: ApiStatus
    endpoint_url: str
    key_prefix: str
    created_at: datetime
    updated_at: datetime
    rate_limit_per_minute: int
    log_payloads: bool
    alert_thresholds: AlertThresholds
    stats: ApiSummary | None = None


class ApiList(BaseModel):
    items: list[ApiPublic]


class ApiCreated(BaseModel):
    api: ApiPublic
    api_key: str = Field(description="the full key; shown here once, never again")
    api_url: str


class ApiKeyRotated(BaseModel):
    api: ApiPublic
    api_key: str = Field(description="the new full key; shown here once, never again")


class ApiDocs(BaseModel):
    """How to call one API: endpoint, features, and examples that work once the key is filled in."""

    api_id: str
    name: str
    endpoint_url: str
    method: Literal["POST"] = "POST"
    headers: dict[str, str]
    task: Task
    model_version: int
    features: list[FeatureSpec]
    classes: list[str] | None
    example_request: dict[str, JsonValue]
    example_response: dict[str, JsonValue]
    batch_example_request: dict[str, JsonValue]
    curl: str
    python: str
    errors: list[dict[str, JsonValue]]


# --- query strings ----------------------------------------------------------------------------


SortKey = Literal["name", "created_at", "requests", "last_used", "error_rate"]


class ApiListQuery(RequestModel):
    status: ApiStatus | None = None
    model_id: str | None = None
    q: str | None = Field(None, max_length=200, description="matched against API and model names")
    sort: SortKey = "created_at"
    order: Literal["asc", "desc"] = "desc"


class LogsQuery(RequestModel):
    after: int = Field(0, ge=0, description="first line to return (the previous answer's next)")


class RangeQuery(RequestModel):
    range: Range = "24h"


class TimeSeriesQuery(RequestModel):
    range: Range = "24h"
    bucket: Bucket | None = Field(
        None, description="default: minute for 24h, hour for 7d, day for 30d"
    )


class RequestsQuery(RequestModel):
    page: int = Field(1, ge=1)
    page_size: int = Field(50, ge=1, le=1000)
    status: StatusFilter | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    broker: bool
