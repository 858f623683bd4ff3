"""Resources of the management API (docs/api-contract.md): users, models, training, exported APIs.

No I/O lives here. Request models (``*Create``, ``*Update``) forbid unknown fields so a typo is a
clear 400 instead of a silently ignored setting.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.messages import ApiStatus, FeatureSpec, ImageSpec, Task, TrafficMode
from schemas.monitoring import ApiSummary, Bucket, Range, StatusFilter

JsonValue = Any


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class RequestModel(BaseModel):
    """Base of every request body and query string: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ImageInput(ImageSpec):
    """The images a CSV training or an upload declares (``ImageSpec``): W x H pixel columns in
    row-major order, their value range and whether ink is high; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


# --- accounts ---------------------------------------------------------------------------------


class UserPublic(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: str
    username: str
    role: Role
    created_at: datetime
    active: bool = Field(True, description="a deactivated account cannot log in")
    last_login: datetime | None = Field(None, description="the last successful login, if any")


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
    active: bool | None = Field(
        None,
        strict=True,
        description="false deactivates the account: no login, its tokens stop working",
    )


class PasswordChange(RequestModel):
    """A user's own password change: the current one proves it is them, not a left-open tab."""

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=8, max_length=256)


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


AlgorithmName = Literal[
    "logistic_regression", "linear_regression", "random_forest", "gradient_boosting"
]
"""The algorithms ``management_api.algorithms.ALGORITHMS`` trains (a unit test keeps them equal)."""


class TrainBuiltinRequest(RequestModel):
    """Train on a built-in scikit-learn dataset (JSON body of ``POST /api/models/train``)."""

    name: str = Field(min_length=1, max_length=100)
    dataset: Literal["iris", "wine", "breast_cancer", "diabetes", "digits"]
    algorithm: AlgorithmName
    params: dict[str, JsonValue] = Field(default_factory=dict)
    test_size: float = Field(0.2, gt=0.05, lt=0.9)


ColumnType = Literal["numeric", "categorical"]
"""A CSV column's type chosen in the wizard: ``numeric`` (numbers) or ``categorical`` (labels)."""


class TrainCsvForm(RequestModel):
    """Train on an uploaded CSV (multipart ``POST /api/models/train``; ``file`` is the CSV)."""

    name: str = Field(min_length=1, max_length=100)
    target: str = Field(min_length=1)
    algorithm: AlgorithmName
    params: dict[str, JsonValue] = Field(default_factory=dict)
    task: Task | None = None
    test_size: float = Field(0.2, gt=0.05, lt=0.9)
    drop_columns: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list,
        max_length=1000,
        description="CSV columns left out of the features (an id, free text); never the target",
    )
    column_types: dict[Annotated[str, Field(min_length=1, max_length=1000)], ColumnType] = Field(
        default_factory=dict,
        max_length=1000,
        description="a feature column's type instead of the inferred one: numeric or categorical",
    )
    image: ImageInput | None = Field(
        None,
        description="the feature columns are the pixels of W x H grayscale images (row-major): "
        "the API will also take a PNG or JPEG; W x H must be the number of features",
    )


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


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
    queue_position: int | None = Field(
        None, ge=1, description="place in the training queue while queued (1 = next to start)"
    )


class TrainingLogs(BaseModel):
    lines: list[str]
    next: int
    status: JobStatus


class ConfusionMatrix(BaseModel):
    """Held-out counts: ``matrix[i][j]`` rows of true class ``labels[i]`` predicted as
    ``labels[j]``."""

    labels: list[str]
    matrix: list[list[int]]
    truncated: bool = Field(
        False, description="only the most frequent classes are shown (too many for one matrix)"
    )


class ClassScores(BaseModel):
    """Precision, recall and F1 of one class on the held-out split; support = its rows there."""

    label: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int


class ResidualPoint(BaseModel):
    predicted: float | None
    residual: float | None = Field(description="true value minus predicted")


class Residuals(BaseModel):
    """A regressor's held-out residuals (true minus predicted): summary, histogram, sample."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    bin_edges: list[float | None] = Field(description="histogram edges (one more than counts)")
    counts: list[int]
    points: list[ResidualPoint] = Field(description="a sample of at most 200 held-out rows")


class FeatureImportance(BaseModel):
    """Permutation importance of one input feature: the drop in the held-out score."""

    feature: str
    mean: float | None
    std: float | None


class VersionEvaluation(BaseModel):
    """How a trained version did on its held-out split beyond its metrics (bounded in size)."""

    n_test: int
    confusion_matrix: ConfusionMatrix | None = None
    per_class: list[ClassScores] | None = None
    residuals: Residuals | None = None
    importance: list[FeatureImportance] = Field(
        default_factory=list, description="one entry per input feature, most important first"
    )
    importance_scoring: str | None = Field(None, description="score permuted: accuracy or r2")
    importance_repeats: int | None = None
    importance_rows: int | None = None


class VersionApi(BaseModel):
    """An exported API of the caller's serving this version."""

    id: str
    name: str
    status: ApiStatus


class ServingRuntime(StrEnum):
    ONNX = "onnx"
    """onnxruntime, on the version's ONNX conversion (it agreed with scikit-learn)."""
    SKLEARN = "sklearn"
    """scikit-learn, on the version's skops file (always the source of truth)."""


class VersionServing(BaseModel):
    """How predictors run a version: onnxruntime where its ONNX conversion gave scikit-learn's
    labels and probabilities/values (within 1e-5) on check rows, scikit-learn otherwise."""

    runtime: ServingRuntime
    reason: str | None = Field(None, description="why scikit-learn serves it (empty for onnx)")
    max_abs_diff: float | None = Field(
        None, description="largest difference of probabilities/values seen on the check rows"
    )
    rows_checked: int = Field(0, description="rows both runtimes answered in the check")
    rows_source: str | None = Field(
        None, description="where the check rows came from (held-out split, or sampled)"
    )


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
    evaluation: VersionEvaluation | None = Field(
        None,
        description="held-out evaluation, in GET /api/models/{id} only; none for uploaded "
        "versions and versions trained before it was recorded",
    )
    training_job_id: str | None = Field(
        None, description="the training job that made it (its log), in GET /api/models/{id} only"
    )
    apis: list[VersionApi] | None = Field(
        None, description="the caller's exported APIs serving it, in GET /api/models/{id} only"
    )
    serving: VersionServing | None = Field(
        None,
        description="how predictors run it (onnxruntime or scikit-learn, and why), in "
        "GET /api/models/{id} only; none until it has been compiled",
    )
    image: ImageSpec | None = Field(
        None, description="its features are the pixels of images of this spec (it takes images)"
    )


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
    image: ImageInput | None = Field(
        None,
        description="the features are the pixels of W x H grayscale images (row-major): the "
        "API will also take a PNG or JPEG; W x H must be the number of features",
    )


class ModelInspectForm(RequestModel):
    """Multipart form of ``POST /api/models/upload/inspect``: only ``file``, the .skops artifact."""


class ModelInspection(BaseModel):
    """What a .skops file says about itself, checked like an upload and never run: a proposal
    for the upload form (the user checks and edits it before uploading)."""

    algorithm: str = Field(description="class name of the outermost estimator")
    task: Task | None = Field(description="classification or regression when the file tells")
    has_predict_proba: bool
    classes: list[str] | None = Field(description="``classes_`` when the file has them")
    n_features_in: int | None = Field(description="``n_features_in_`` when the file has it")
    feature_names_found: bool = Field(
        description="whether the names come from ``feature_names_in_`` (else placeholders)"
    )
    features: list[FeatureSpec] = Field(
        description="proposed features: named from ``feature_names_in_``, categorical with the "
        "categories of an encoder of the file, numeric otherwise"
    )


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
    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"\S")
    version: int | None = Field(
        None, ge=1, strict=True, description="model version number; latest if absent"
    )
    rate_limit_per_minute: int = Field(100, ge=1, le=1_000_000, strict=True)
    alert_thresholds: AlertThresholdsUpdate | None = None
    log_payloads: bool = Field(True, strict=True, description="false: payloads are not stored")


class ApiUpdate(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=100)
    rate_limit_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    alert_thresholds: AlertThresholdsUpdate | None = None
    log_payloads: bool | None = None


class ApiStatusUpdate(RequestModel):
    status: ApiStatus


class ApiDeploy(RequestModel):
    version: int = Field(ge=1, strict=True)
    force: bool = Field(
        False,
        strict=True,
        description="deploy even if the version breaks today's requests (409 "
        "INCOMPATIBLE_VERSION otherwise); owner or admin",
    )


class RetrainRequest(RequestModel):
    """Body of ``POST /api/exports/{id}/retrain`` (issue 15)."""

    include_feedback: bool = Field(
        False,
        strict=True,
        description="add the API's feedback rows, joined by request id to the inputs ingress "
        "logged (only requests with payload logging on)",
    )


class TrafficPublic(BaseModel):
    """The second version an API routes (canary) or mirrors (shadow) part of its traffic to."""

    version_number: int
    model_version_id: str
    mode: TrafficMode
    weight_percent: float = Field(description="share of the requests routed or mirrored, in %")


class TrafficSet(RequestModel):
    """``PUT /api/exports/{id}/traffic``: send a share of the traffic to another version."""

    version: int = Field(ge=1, strict=True, description="number of a version of the API's model")
    mode: TrafficMode
    weight_percent: float | None = Field(
        None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="share of the requests in % (0 excluded); required for a canary, "
        "100 by default for a shadow",
    )

    @model_validator(mode="after")
    def _canary_needs_a_weight(self) -> TrafficSet:
        if self.weight_percent is None:
            if self.mode is TrafficMode.CANARY:
                raise ValueError("a canary needs weight_percent (0 < weight_percent <= 100)")
            self.weight_percent = 100.0
        return self


class ApiPublic(BaseModel):
    """An exported API as its owner sees it (the key itself only appears once, elsewhere)."""

    id: str
    name: str
    model_id: str
    model_name: str
    version_number: int = Field(description="number of the deployed version (1, 2, ...)")
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
    traffic: TrafficPublic | None = Field(
        None, description="a canary or shadow version beside the one served; null: none"
    )
    previous_version_number: int | None = Field(
        None, description="the version served before the last promote or deploy (rollback)"
    )
    health: Literal["ok", "error"] = Field(
        "ok", description="error: a 5xx error-rate alert rule of the API is firing"
    )


class ApiList(BaseModel):
    items: list[ApiPublic]


class ApiCreated(BaseModel):
    api: ApiPublic
    api_key: str = Field(description="the full key; shown here once, never again")
    api_url: str
    example_request: dict[str, JsonValue] = Field(
        default_factory=dict, description="a valid body for this API (a held-out row)"
    )
    curl: str = Field("", description="a curl command that works as pasted (key included)")


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
    version_number: int = Field(description="number of the deployed version (1, 2, ...)")
    features: list[FeatureSpec]
    classes: list[str] | None
    example_request: dict[str, JsonValue]
    example_response: dict[str, JsonValue]
    batch_example_request: dict[str, JsonValue]
    image: ImageSpec | None = Field(
        None, description="the API also takes images of this spec (PNG or JPEG), else null"
    )
    image_example_request: dict[str, JsonValue] | None = Field(
        None,
        description='for an image API: {"image": "<base64 PNG>"}, the example row drawn as an '
        "image (ingress reads it back close to the row)",
    )
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
        None,
        description="default: 10s for 15m, 30s for 1h, 5m for 6h, 15m for 24h, hour for 7d, "
        "6h for 30d (at most 1,440 buckets, else 400)",
    )


class StatsQuery(RangeQuery):
    by: Literal["version"] | None = Field(
        None, description="version: also the figures per version (canary, shadow)"
    )


class TimeSeriesByQuery(TimeSeriesQuery):
    by: Literal["version"] | None = Field(
        None, description="version: also every bucket per version (canary, shadow)"
    )


class RequestsQuery(RequestModel):
    page: int = Field(1, ge=1)
    page_size: int = Field(50, ge=1, le=1000)
    status: StatusFilter | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    broker: bool
    service: str = "management-api"
    instance_id: str = ""
    """This process's id (``MODELGATE_MANAGEMENT_ID``): ``modelgate up`` checks it is talking to
    the process it started, not another program on the port."""
