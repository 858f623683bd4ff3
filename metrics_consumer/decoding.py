"""Decoding broker messages into columns for ClickHouse: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, compress
from typing import Any

from msgspec.structs import astuple

from infra.topology import FEEDBACK_KEY, REQUEST_EVENTS_KEY, WORKER_SAMPLE_KEY
from schemas.messages import (
    EVENT_COLUMN_OF,
    FEEDBACK_COLUMN_OF,
    FeedbackBatch,
    MessageError,
    RequestEvent,
    RequestEventBatch,
    WorkerSample,
)
from schemas.messages import (
    decode as decode_message,
)

# request_events columns the consumer writes (the rest have defaults), in insert order: the
# column of each RequestEvent field in field order, with the batch id after the event id.
# Derived from the one definition, so a new field cannot be forgotten here; a test checks them
# against the live table's DESCRIBE.
_FIELDS: tuple[str, ...] = tuple(EVENT_COLUMN_OF)
assert _FIELDS[:2] == ("event_id", "ts"), "event rows are built with event_id and ts first"
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "batch_id",
    "ts",
    *(EVENT_COLUMN_OF[name] for name in _FIELDS[2:]),
)

FEEDBACK_COLUMNS: tuple[str, ...] = ("batch_id", *FEEDBACK_COLUMN_OF.values())
"""``feedback`` columns the consumer writes: the batch id, then each ``Feedback`` field's."""

SAMPLE_COLUMNS: tuple[str, ...] = tuple(
    name for name in WorkerSample.model_fields if name != "schema_version"
)
_UINT32_MAX = 4_294_967_295
# Low-cardinality text repeats in every event: one shared object per value keeps buffers small.
_SHARED_COLUMNS = frozenset(
    {"api_id", "model_version", "error_code", "worker_id", "ingress_id", "key_prefix", "prediction"}
)
_SHARED_AT = tuple(n for n, column in enumerate(EVENT_COLUMNS) if column in _SHARED_COLUMNS)


class DecodeError(ValueError):
    """A message that can never be stored; it goes to the dead-letter queue with this reason."""


@dataclass
class EventBatch:
    """A decoded ``RequestEventBatch``: its ids and its events already as columns; ``replayed``
    batches come again from an ingress spool and may already be stored."""

    batch_id: str
    ingress_id: str
    rows: EventRows
    replayed: bool = False


@dataclass
class FeedbackRows:
    """The feedback of one ``FeedbackBatch`` as columns (``FEEDBACK_COLUMNS`` order)."""

    batch_id: str
    columns: list[list[Any]]
    ts_min: int
    ts_max: int

    @property
    def feedback_ids(self) -> list[str]:
        ids: list[str] = self.columns[_FEEDBACK_ID_AT]
        return ids

    def __len__(self) -> int:
        return len(self.columns[0])

    def select(self, keep: Sequence[bool]) -> FeedbackRows:
        columns = [list(compress(column, keep)) for column in self.columns]
        return FeedbackRows(self.batch_id, columns, self.ts_min, self.ts_max)


_FEEDBACK_ID_AT = FEEDBACK_COLUMNS.index("feedback_id")
_RECEIVED_AT = FEEDBACK_COLUMNS.index("received_at")


def decode_feedback(body: bytes) -> FeedbackRows:
    """A ``FeedbackBatch`` straight into columns; ``received_at`` as epoch milliseconds."""
    try:
        batch = decode_message(body, FeedbackBatch)
    except MessageError as exc:
        raise DecodeError(str(exc)) from None
    items = batch.items
    columns: list[list[Any]] = [[batch.batch_id] * len(items)]
    columns += [list(values) for values in zip(*map(astuple, items), strict=True)] or [
        [] for _ in FEEDBACK_COLUMN_OF
    ]
    stamps = [int(ts.timestamp() * 1000) for ts in columns[_RECEIVED_AT]]
    columns[_RECEIVED_AT] = stamps
    return FeedbackRows(batch.batch_id, columns, min(stamps, default=0), max(stamps, default=0))


def concat_feedback(parts: Sequence[FeedbackRows]) -> list[list[Any]]:
    """One column-oriented insert block from several messages' feedback."""
    width = len(FEEDBACK_COLUMNS)
    return [list(chain.from_iterable(part.columns[i] for part in parts)) for i in range(width)]


def decode(routing_key: str, body: bytes) -> EventBatch | WorkerSample | FeedbackRows:
    """The message a body carries, judged by its routing key; DecodeError says why not."""
    if routing_key == FEEDBACK_KEY:
        return decode_feedback(body)
    if routing_key == WORKER_SAMPLE_KEY or routing_key.startswith("worker."):
        try:
            return decode_message(body, WorkerSample)
        except MessageError as exc:
            raise DecodeError(str(exc)) from None
    if routing_key == REQUEST_EVENTS_KEY or routing_key.startswith("request."):
        return decode_event_batch(body)
    raise DecodeError(f"unknown routing key {routing_key!r}")


def _shared(values: list[str]) -> list[str]:
    shared: dict[str, str] = {}
    return [shared.setdefault(v, v) for v in values]


def decode_event_batch(body: bytes) -> EventBatch:
    """A RequestEventBatch, checked by its msgspec struct, straight into columns (the consumer's
    hottest path: thousands of events per message)."""
    try:
        batch = decode_message(body, RequestEventBatch)
    except MessageError as exc:
        raise DecodeError(str(exc)) from None
    rows = event_rows(batch.events, batch.batch_id)
    return EventBatch(batch.batch_id, batch.ingress_id, rows, batch.replayed)


def epoch_ms(event: RequestEvent | WorkerSample) -> int:
    return int(event.ts.timestamp() * 1000)


@dataclass
class EventRows:
    """The events of one message as columns (``EVENT_COLUMNS`` order): compact while buffered,
    and ready to concatenate into one insert."""

    columns: list[list[Any]]
    ts_min: int
    ts_max: int

    @property
    def event_ids(self) -> list[str]:
        ids: list[str] = self.columns[0]
        return ids

    def __len__(self) -> int:
        return len(self.columns[0])

    def select(self, keep: Sequence[bool]) -> EventRows:
        columns = [list(compress(column, keep)) for column in self.columns]
        return EventRows(columns, self.ts_min, self.ts_max)


def event_rows(events: Sequence[RequestEvent], batch_id: str) -> EventRows:
    """The events of one batch as columns (``EVENT_COLUMNS``); ``ts`` as epoch milliseconds
    (raw DateTime64(3))."""
    if not events:
        return EventRows([[] for _ in EVENT_COLUMNS], 0, 0)
    event_ids, stamps, *rest = map(list, zip(*map(astuple, events), strict=True))
    timestamps = [int(ts.timestamp() * 1000) for ts in stamps]
    columns: list[list[Any]] = [event_ids, [batch_id] * len(events), timestamps, *rest]
    for n in _SHARED_AT:
        columns[n] = _shared(columns[n])
    return EventRows(columns, min(timestamps), max(timestamps))


def concat_rows(parts: Sequence[EventRows]) -> list[list[Any]]:
    """One column-oriented insert block from several messages' rows."""
    width = len(EVENT_COLUMNS)
    return [list(chain.from_iterable(part.columns[i] for part in parts)) for i in range(width)]


def event_columns(events: Sequence[RequestEvent], batch_ids: Sequence[str]) -> list[list[Any]]:
    """Column-oriented data for ``EVENT_COLUMNS``; ``batch_ids[i]`` is the batch of event i."""
    rows = event_rows(events, "")
    rows.columns[1] = list(batch_ids)
    return rows.columns


_SAMPLE_VALUE: dict[str, Callable[[WorkerSample], Any]] = {
    "ts": epoch_ms,
    "pid": lambda s: max(0, min(s.pid, _UINT32_MAX)),
    "batches": lambda s: max(0, s.batches),
    "rows": lambda s: max(0, s.rows),
}


def sample_columns(samples: Sequence[WorkerSample]) -> list[list[Any]]:
    """Column-oriented data for ``SAMPLE_COLUMNS`` (the WorkerSample fields, by name)."""
    columns: list[list[Any]] = []
    for name in SAMPLE_COLUMNS:
        value = _SAMPLE_VALUE.get(name)
        if value is None:
            columns.append([getattr(s, name) for s in samples])
        else:
            columns.append([value(s) for s in samples])
    return columns
