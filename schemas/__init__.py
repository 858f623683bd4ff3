"""Pydantic v2 contracts shared by every modelgate service: messages, events, resources, errors.

No I/O lives here. Every message on the broker carries ``schema_version``.
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
    PredictBatch,
    PredictResult,
    RegistrySnapshot,
    RegistrySnapshotRequest,
    RequestEvent,
    RequestEventBatch,
    RowResult,
    Task,
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
    "PredictBatch",
    "PredictResult",
    "RegistrySnapshot",
    "RegistrySnapshotRequest",
    "RequestEvent",
    "RequestEventBatch",
    "RowResult",
    "Task",
    "WorkerSample",
]
