"""Messages that cross RabbitMQ: the registry, prediction RPC, request events, worker samples.

One definition per message: ``encode`` and ``decode`` are the only way bodies are written and
read, and ClickHouse column lists derive from the fields (``EVENT_COLUMN_OF``). The hot-path
messages (a batch per 64 rows, an event per request, thousands of events per consumed message)
are msgspec structs; the rest are pydantic models. Every message carries ``schema_version``;
readers ignore fields they do not know, so a newer writer does not break an older reader.

Names: ``version_key`` is a model version's store key, ``version_number`` its number shown to
people (1, 2, ...). A ``RequestEvent`` is a row of ClickHouse's ``request_events``, whose columns
are the analysts' contract: its ``version_key`` travels and is stored as ``model_version``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import msgspec
import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_VERSION = 1

JsonScalar = str | int | float | bool | None
M = TypeVar("M", bound=BaseModel | msgspec.Struct)


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc_from_epoch(seconds: float) -> datetime:
    """An epoch time in seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


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


class InkLevel(StrEnum):
    HIGH = "high"
    """The strokes take ``max_value`` and the paper ``min_value`` (sklearn's digits, MNIST)."""
    LOW = "low"
    """The strokes take ``min_value`` and the paper ``max_value`` (a scan kept as it is)."""


class ImageSpec(BaseModel):
    """A model whose features are the pixels of a grayscale image, row after row (``width`` x
    ``height`` features, in feature order): ingress turns a PNG or JPEG into them, cropped to the
    ink, centred with ``margin`` around it, resized and scaled to the training range."""

    model_config = ConfigDict(extra="ignore")

    width: int = Field(ge=1, le=256, description="pixels per row (columns)")
    height: int = Field(ge=1, le=256, description="rows of pixels")
    min_value: float = Field(0.0, description="the value of a blank pixel (ink high) or of ink")
    max_value: float = Field(255.0, description="the value of full ink (ink high) or of paper")
    ink: InkLevel = Field(InkLevel.HIGH, description="whether ink takes the high values")
    margin: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="share of the width and height left blank on each side of the ink's box "
        "(0: the ink touches the frame, as in sklearn's digits)",
    )
    integers: bool = Field(False, description="pixel values are whole numbers (rounded)")

    @model_validator(mode="after")
    def _range(self) -> ImageSpec:
        if not self.max_value > self.min_value:
            raise ValueError("max_value must be greater than min_value")
        return self

    @property
    def pixels(self) -> int:
        return self.width * self.height


class TrafficMode(StrEnum):
    CANARY = "canary"
    """``weight_percent`` of the requests are answered by the second version instead."""
    SHADOW = "shadow"
    """``weight_percent`` of the requests are also sent to the second version; its answer is
    recorded (an event with ``shadow``), never returned."""


class TrafficSplit(BaseModel):
    """A second version an API sends part of its traffic to, beside the one it serves. It takes
    the same inputs as the serving version (the deploy guard refuses it otherwise), so ingress
    validates requests against the serving version's features only."""

    model_config = ConfigDict(extra="ignore")

    version_key: str = Field(description="model store key of the second version")
    version_number: int = Field(description="its number (1, 2, ...)")
    mode: TrafficMode
    weight_percent: float = Field(
        gt=0, le=100, description="share of the requests routed (canary) or mirrored (shadow)"
    )


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
    version_key: str = Field(
        validation_alias=AliasChoices("version_key", "model_version"),
        description="model store key of the deployed version (read as ``model_version`` from an "
        "older writer)",
    )
    version_number: int = Field(
        1,
        validation_alias=AliasChoices("version_number", "model_version_number"),
        description="the deployed version's number (1, 2, ...)",
    )
    task: Task
    features: list[FeatureSpec]
    classes: list[str] | None = None
    rate_limit_per_minute: int = 100
    log_payloads: bool = True
    traffic: TrafficSplit | None = None
    """A canary or shadow version beside ``version_key``; None: all traffic to ``version_key``."""
    image: ImageSpec | None = None
    """The deployed version takes images (its features are their pixels); None: features only."""
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


class WireStruct(msgspec.Struct):
    """Base of the hot-path messages (prediction RPC, request events): msgspec structs, typed
    and checked on decode like the pydantic models, several times faster. Unknown fields are
    ignored, so a newer writer does not break an older reader."""


UInt16 = Annotated[int, msgspec.Meta(ge=0, le=65_535)]
UInt32 = Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]
"""A time with its zone (naive times are refused: they would be stored in the server's zone)."""


class BatchTrace(WireStruct, array_like=True):
    """One request of a ``PredictBatch``: its request (event) id, the ``traceparent`` ingress
    hands on for it (its trace id, ingress's span as parent) and how many of the batch's rows are
    its own. On the wire a 3-item array, since a batch may carry a few hundred."""

    request_id: str
    traceparent: str
    rows: int


class PredictBatch(WireStruct, kw_only=True):
    """Rows for one model version, predicted together by one worker (one AMQP message)."""

    schema_version: int = SCHEMA_VERSION
    batch_id: str
    version_key: str
    """Model store key of the version to predict with."""
    task: Task
    feature_names: list[str]
    want_probabilities: bool = True
    sent_at: float
    """Epoch seconds when ingress published the batch."""
    deadline: float
    """Epoch seconds after which the answer is useless."""
    traces: list[BatchTrace] = msgspec.field(default_factory=list)
    """The requests whose rows the batch holds, in row order, each with its trace context (a
    batch serves several requests, so their traces travel here; the AMQP ``traceparent`` header
    names only the request that opened the batch). Empty from an older ingress."""
    rows: list[list[JsonScalar]]
    """One list per row, in ``feature_names`` order. Last on the wire: ``encode`` writes them
    with orjson (see ``_encode_predict_batch``)."""


class RowResult(WireStruct, kw_only=True, omit_defaults=True):
    """The answer for one row: a prediction, or an error that fails this row only (then
    ``error_code`` is set)."""

    prediction: JsonScalar = None
    probabilities: dict[str, float] | None = None
    error_code: str | None = None
    error_message: str | None = None


class PredictResult(WireStruct, kw_only=True):
    """A worker's reply to one ``PredictBatch``: one ``RowResult`` per row, in order."""

    schema_version: int = SCHEMA_VERSION
    batch_id: str
    version_key: str = ""
    worker_id: str = ""
    results: list[RowResult]
    error_code: str | None = None
    """Set when the whole batch failed (then ``results`` is empty)."""
    error_message: str | None = None
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    cpu_ms: float = 0.0
    """CPU time of the whole batch; rows share it equally."""
    worker_rss_mb: float = 0.0


PRE_AUTH_ERROR_CODES = frozenset(
    {"MISSING_API_KEY", "INVALID_API_KEY", "API_NOT_FOUND", "REGISTRY_NOT_READY"}
)
"""Error codes of requests rejected before their key was checked against the API's: how an event
written without ``authenticated`` (an older ingress, a row before migration 0005) is judged."""


class RequestEvent(WireStruct, kw_only=True):
    """One HTTP request to a prediction API, accepted or rejected: one row of ClickHouse's
    ``request_events`` (the consumer's column list derives from these fields, see
    ``EVENT_COLUMN_OF``; a test holds them equal to the live table's)."""

    event_id: Annotated[str, msgspec.Meta(min_length=1)]
    ts: UtcTime
    api_id: str
    version_key: str = msgspec.field(default="", name="model_version")
    """Model store key of the version that answered; on the wire and in ClickHouse under its
    column's name, ``model_version`` (old spools and consumers keep reading it)."""
    status_code: UInt16
    error_code: str = ""
    total_ms: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    batch_size: UInt32 = 0
    rows: UInt32 = 0
    request_bytes: UInt32 = 0
    response_bytes: UInt32 = 0
    cpu_ms: float = 0.0
    worker_id: str = ""
    worker_rss_mb: float = 0.0
    ingress_id: str = ""
    key_prefix: str = ""
    prediction: str = ""
    input: str = ""
    """Request body, truncated; empty when logging is off."""
    output: str = ""
    """Response body, truncated; empty when logging is off."""
    authenticated: bool | None = None
    """The request's key matched the API's; false for requests rejected before authentication
    (no key, a wrong key, an unknown API), which anyone can send: they are kept out of the API's
    requests, errors, latency and alerts. Absent (an older writer), it is judged from
    ``error_code`` (``PRE_AUTH_ERROR_CODES``), so it is never None once built."""

    shadow: bool = False
    """The answer of a version the API mirrors traffic to, never returned to the client; kept
    out of the API's figures (the rollups filter it)."""
    shadow_of: str = ""
    """For a shadow answer: ``event_id`` of the request it mirrored (compare their predictions
    for agreement)."""
    trace_id: str = ""
    """W3C trace id of the request (from its ``traceparent`` header, or made by ingress), also
    in the answer's ``traceparent`` and the predictor's log line of its batch; a shadow answer has
    its request's. Empty from an older writer."""

    def __post_init__(self) -> None:
        if self.authenticated is None:
            self.authenticated = self.error_code not in PRE_AUTH_ERROR_CODES


EVENT_COLUMN_OF: dict[str, str] = {
    field.name: field.encode_name for field in msgspec.structs.fields(RequestEvent)
}
"""``request_events`` column of each ``RequestEvent`` field: its name on the wire. Column names
are the analysts' contract and the migrations are immutable, so a field renamed in Python keeps
its column through ``msgspec.field(name=...)``."""


class RequestEventBatch(WireStruct, kw_only=True):
    """Request events published together by one ingress (routing key ``request.batch``)."""

    schema_version: int = SCHEMA_VERSION
    batch_id: str
    ingress_id: str
    replayed: bool = False
    """Sent again from ingress's spool after a restart: it may already be stored, so the
    consumer checks its event ids."""
    events: list[RequestEvent]
    """Last on the wire, so ingress can splice events it encoded once (see ``ingress.events``)."""


class Feedback(WireStruct, kw_only=True):
    """The true answer (``actual``) a client reports for one prediction request it made: one row
    of ClickHouse's ``feedback`` (columns derive from these fields, ``FEEDBACK_COLUMN_OF``).
    Several reports for one request may come; the latest (``received_at``) is the truth."""

    feedback_id: Annotated[str, msgspec.Meta(min_length=1)]
    """Unique per report: the consumer's duplicate check (a redelivered copy is stored once)."""
    request_id: str
    """The ``request_id`` ingress answered the prediction with (its ``RequestEvent.event_id``)."""
    api_id: str
    actual: str
    """The truth as text, written as the prediction is stored (``RequestEvent.prediction``):
    a class label as its string, a regression target as a number's text."""
    received_at: UtcTime
    key_prefix: str = ""


FEEDBACK_COLUMN_OF: dict[str, str] = {
    field.name: field.encode_name for field in msgspec.structs.fields(Feedback)
}
"""``feedback`` column of each ``Feedback`` field (a test holds them equal to the live table's)."""


class FeedbackBatch(WireStruct, kw_only=True):
    """The feedback of one HTTP request to ``/api/predict/{api_id}/feedback`` (routing key
    ``feedback``), published with confirms before ingress answers 202."""

    schema_version: int = SCHEMA_VERSION
    batch_id: str
    ingress_id: str = ""
    items: list[Feedback]


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


class VersionReady(Message):
    """A predictor's report on a model version it was told to serve: loaded and warmed by one
    prediction (``ok``), or not loadable (``error`` says why). Published on the ``events``
    exchange with routing key ``version.ready`` (no durable queue binds it); ingress moves an
    API's traffic to a newly deployed version once some predictor reports it ready."""

    version_key: str
    predictor_id: str
    ok: bool
    error: str = ""
    load_ms: float = 0.0
    """Time to load and warm the version (0 when it was loaded already)."""
    at: datetime = Field(default_factory=utcnow)


class IngressHeartbeat(WireStruct, kw_only=True):
    """An ingress replica's announcement to its peers (``events`` exchange, routing key
    ``ingress.peer``; no durable queue binds it): it is alive, and per rate-limited key how many
    requests a second it sees (``demand``) and the tokens it gave up since its last heartbeat
    (``released``, per key and receiving replica: its share shrank, or it leaves). Peers split
    each key's limit by these figures (``ingress.ratelimit``)."""

    schema_version: int = SCHEMA_VERSION
    replica_id: str
    boot: str
    """Random per process start: tells a restarted replica from its earlier life."""
    seq: int = 0
    interval_s: float = 1.0
    hello: bool = False
    """Sent at start: peers answer with a heartbeat at once."""
    leaving: bool = False
    """Sent at a clean stop: peers take its share back at once."""
    demand: dict[str, float] = msgspec.field(default_factory=dict)
    limits: dict[str, int] = msgspec.field(default_factory=dict)
    """The limit of each key in ``demand`` (so a replica that holds no bucket of it yet can tell
    its share before)."""
    released: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    returned: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    """Per key and releasing replica, the part of a release this one had no room for."""


_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode(message: BaseModel | msgspec.Struct) -> bytes:
    """A message as JSON bytes: the one encoder of every wire message."""
    if type(message) is PredictBatch:
        return _encode_predict_batch(message)
    if isinstance(message, msgspec.Struct):
        return _ENCODER.encode(message)
    return message.__pydantic_serializer__.to_json(message)


def _encode_predict_batch(batch: PredictBatch) -> bytes:
    """The batch without its rows by msgspec, the rows (its bulk: floats, mostly) by orjson,
    which writes floats about twice as fast; the same JSON as ``_ENCODER.encode(batch)``."""
    head = _ENCODER.encode(msgspec.structs.replace(batch, rows=[]))
    return b"%b%b}" % (head[: -len(b"[]}")], orjson.dumps(batch.rows))


def decode(body: bytes, type: type[M]) -> M:
    """The message of ``type`` a JSON body holds; fields it does not know are ignored, missing
    ones take their defaults, values are read laxly (a whole float for an integer, a number for
    a float). Raises ``MessageError`` saying which field is wrong and why."""
    if issubclass(type, BaseModel):
        try:
            return type.model_validate_json(body)
        except ValidationError as exc:
            raise MessageError(_pydantic_reason(exc)) from None
    decoder = _DECODERS.get(type)
    if decoder is None:
        decoder = _DECODERS[type] = msgspec.json.Decoder(type, strict=False)
    try:
        message: M = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise MessageError(_msgspec_reason(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise MessageError(f"invalid message: not JSON ({exc})"[:500]) from None
    return message


class MessageError(ValueError):
    """A body that is not a valid message of the type asked for; the text says where and why,
    as ``invalid message: events.3.status_code: ...``."""


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _msgspec_reason(text: str) -> str:
    match = _AT.match(text)
    what, path = (match["what"], match["path"] or "") if match else (text, "")
    where = re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")
    missing = _MISSING.match(what)
    if missing:
        where = f"{where}.{missing['field']}" if where else missing["field"]
        what = "field required"
    elif "timezone" in what:
        what = "must be a time with its time zone"
    return f"invalid message: {where + ': ' if where else ''}{what}"[:500]


def _pydantic_reason(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"invalid message: {'; '.join(parts)}{more}"[:500]
