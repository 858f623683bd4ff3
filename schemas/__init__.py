"""Contracts shared by every modelgate service: messages, events, resources, errors.

No I/O lives here. Every message on the broker carries ``schema_version`` and is written and
read by ``schemas.messages.encode`` / ``decode`` (msgspec structs on the hot paths, pydantic v2
models elsewhere).
"""

from schemas.errors import ErrorBody, ErrorCode, ErrorDetail
from schemas.messages import (
    SCHEMA_VERSION,
    ApiChanged,
    ApiChangeKind,
    ApiRecord,
    ApiStatus,
    FeatureSpec,
    FeatureType,
    ImageSpec,
    InkLevel,
    PredictBatch,
    PredictResult,
    RegistrySnapshot,
    RegistrySnapshotRequest,
    RequestEvent,
    RequestEventBatch,
    RowResult,
    Task,
    TrafficMode,
    TrafficSplit,
    VersionReady,
    WorkerSample,
)

__all__ = [
    "SCHEMA_VERSION",
    "ApiChangeKind",
    "ApiChanged",
    "ApiRecord",
    "ApiStatus",
    "ErrorBody",
    "ErrorCode",
    "ErrorDetail",
    "FeatureSpec",
    "FeatureType",
    "ImageSpec",
    "InkLevel",
    "PredictBatch",
    "PredictResult",
    "RegistrySnapshot",
    "RegistrySnapshotRequest",
    "RequestEvent",
    "RequestEventBatch",
    "RowResult",
    "Task",
    "TrafficMode",
    "TrafficSplit",
    "VersionReady",
    "WorkerSample",
]
