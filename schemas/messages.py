"""Messages that cross RabbitMQ: the registry, prediction RPC, request events, worker samples.

Every message carries ``schema_version``; readers ignore fields they do not know, so a newer
writer does not break an older reader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

JsonScalar = str | int | float | bool | None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every broker message."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION


class FeatureType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CATEGORY = "category"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class ApiStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class FeatureSpec(BaseModel):
    """One input feature of a model: its name, type and, for categories, allowed values."""

    model_config = ConfigDict(extra="ignore")

    name: str
    type: FeatureType
    required: bool = True
    categories: list[str] | None = None
    description: str | None = None


class ApiRecord(BaseModel):
    """An exported API as ingress and predictors see it (never the key itself, only its hash)."""

    model_config = ConfigDict(extra="ignore")

    api_id: str
    name: str
    owner_id: str = ""
    key_hash: str = Field(description="hex SHA-256 of the full API key")
    key_prefix: str = Field(description="first characters of the key, for display")
    status: ApiStatus = ApiStatus.ACTIVE
    model_id: str = ""
    model_name: str = ""
    model_version: str = Field(description="model store key of the deployed version")
    model_version_number: int = 1
    task: Task
    features: list[FeatureSpec]
    classes: list[str] | None = None
    rate_limit_per_minute: int = 100
    log_payloads: bool = True
    updated_at: datetime = Field(default_factory=utcnow)


class ApiChangeKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    KEY_ROTATED = "key_rotated"
    STATUS = "status"
    DELETED = "deleted"
    DEPLOYED = "deployed"


class ApiChanged(Message):
    """Fanned out on ``control`` whenever an API changes; ``api`` is None once deleted."""

    kind: ApiChangeKind
    api_id: str
    api: ApiRecord | None = None
    at: datetime = Field(default_factory=utcnow)


class RegistrySnapshotRequest(Message):
    """Asks the management API for the whole registry (ingress start and periodic resync)."""

    requester: str = ""


class RegistrySnapshot(Message):
    """The whole registry at one instant."""

    apis: list[ApiRecord]
    generated_at: datetime = Field(default_factory=utcnow)


class PredictBatch(Message):
    """Rows for one model version, predicted together by one worker (one AMQP message)."""

    batch_id: str
    model_version: str
    task: Task
    feature_names: list[str]
    rows: list[list[JsonScalar]] = Field(description="one list per row, in feature_names order")
    want_probabilities: bool = True
    sent_at: float = Field(description="epoch seconds when ingress published the batch")
    deadline: float = Field(description="epoch seconds after which the answer is useless")


class RowResult(BaseModel):
    """The answer for one row: a prediction, or an error that fails this row only."""

    model_config = ConfigDict(extra="ignore")

    prediction: JsonScalar = None
    probabilities: dict[str, float] | None = None
    error_code: str | None = None
    error_message: str | None = None


class PredictResult(Message):
    """A worker's reply to one ``PredictBatch``: one ``RowResult`` per row, in order."""

    batch_id: str
    model_version: str
    worker_id: str
    results: list[RowResult]
    error_code: str | None = Field(None, description="set when the whole batch failed")
    error_message: str | None = None
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    cpu_ms: float = Field(0.0, description="CPU time of the whole batch; rows share it equally")
    worker_rss_mb: float = 0.0


class RequestEvent(BaseModel):
    """One HTTP request to a prediction API, accepted or rejected."""

    model_config = ConfigDict(extra="ignore")

    event_id: str
    ts: datetime
    api_id: str
    model_version: str = ""
    status_code: int
    error_code: str = ""
    total_ms: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    batch_size: int = 0
    rows: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    cpu_ms: float = 0.0
    worker_id: str = ""
    worker_rss_mb: float = 0.0
    ingress_id: str = ""
    key_prefix: str = ""
    prediction: str = ""
    input: str = Field("", description="request body, truncated; empty when logging is off")
    output: str = Field("", description="response body, truncated; empty when logging is off")


class RequestEventBatch(Message):
    """Request events published together by one ingress (routing key ``request.batch``)."""

    batch_id: str
    ingress_id: str
    events: list[RequestEvent]


class WorkerSample(Message):
    """A predictor's resource sample, every few seconds (routing key ``worker.sample``)."""

    worker_id: str
    ts: datetime = Field(default_factory=utcnow)
    hostname: str = ""
    pid: int = 0
    cpu_percent: float
    rss_mb: float
    loaded_models: list[str] = Field(default_factory=list)
    model_memory_mb: dict[str, float] = Field(default_factory=dict)
    batches: int = 0
    rows: int = 0


def dump(message: BaseModel) -> bytes:
    """Encode a message as JSON bytes (pydantic's own serializer; handles datetimes)."""
    return message.__pydantic_serializer__.to_json(message)
