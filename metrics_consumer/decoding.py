"""Decoding broker messages into columns for ClickHouse: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, compress
from typing import Any

from pydantic import ValidationError

from infra.topology import REQUEST_EVENTS_KEY, WORKER_SAMPLE_KEY
from schemas.messages import RequestEvent, RequestEventBatch, WorkerSample

# request_events columns the consumer writes (the rest have defaults), in insert order.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "batch_id",
    "ts",
    "api_id",
    "model_version",
    "status_code",
    "error_code",
    "total_ms",
    "queue_ms",
    "inference_ms",
    "batch_size",
    "rows",
    "request_bytes",
    "response_bytes",
    "cpu_ms",
    "worker_id",
    "worker_rss_mb",
    "ingress_id",
    "key_prefix",
    "prediction",
    "input",
    "output",
)
# Fields copied as they are from RequestEvent (event_id, batch_id and ts are handled apart).
_PLAIN_EVENT_FIELDS = EVENT_COLUMNS[3:]

SAMPLE_COLUMNS: tuple[str, ...] = (
    "ts",
    "worker_id",
    "hostname",
    "pid",
    "cpu_percent",
    "rss_mb",
    "loaded_models",
    "model_memory_mb",
    "batches",
    "rows",
)
_UINT16_MAX = 65_535
_UINT32_MAX = 4_294_967_295


class DecodeError(ValueError):
    """A message that can never be stored; it goes to the dead-letter queue with this reason."""


def decode(routing_key: str, body: bytes) -> RequestEventBatch | WorkerSample:
    """The message a body carries, judged by its routing key; DecodeError says why not."""
    try:
        if routing_key == WORKER_SAMPLE_KEY or routing_key.startswith("worker."):
            return WorkerSample.model_validate_json(body)
        if routing_key == REQUEST_EVENTS_KEY or routing_key.startswith("request."):
            batch = RequestEventBatch.model_validate_json(body)
            for event in batch.events:
                check_event(event)
            return batch
    except ValidationError as exc:
        raise DecodeError(_short(exc)) from None
    raise DecodeError(f"unknown routing key {routing_key!r}")


def check_event(event: RequestEvent) -> None:
    """Refuse values the columns cannot hold, rather than failing the whole insert later."""
    if not 0 <= event.status_code <= _UINT16_MAX:
        raise DecodeError(f"event {event.event_id}: status_code {event.status_code} out of range")
    for name in ("batch_size", "rows", "request_bytes", "response_bytes"):
        value = getattr(event, name)
        if not 0 <= value <= _UINT32_MAX:
            raise DecodeError(f"event {event.event_id}: {name} {value} out of range")
    if not event.event_id:
        raise DecodeError("event without event_id")
    if event.ts.tzinfo is None:
        raise DecodeError(f"event {event.event_id}: ts has no time zone")


def _short(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"invalid message: {'; '.join(parts)}{more}"[:500]


def epoch_ms(event: RequestEvent | WorkerSample) -> int:
    return int(event.ts.timestamp() * 1000)


# Low-cardinality text repeats in every event: one shared object per value keeps buffers small.
_SHARED_FIELDS = frozenset(
    {"api_id", "model_version", "error_code", "worker_id", "ingress_id", "key_prefix"}
)


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
    """The events of one batch as columns; ``ts`` as epoch milliseconds (raw DateTime64(3))."""
    timestamps = [epoch_ms(e) for e in events]
    columns: list[list[Any]] = [
        [e.event_id for e in events],
        [batch_id] * len(events),
        timestamps,
    ]
    for name in _PLAIN_EVENT_FIELDS:
        values = [getattr(e, name) for e in events]
        if name in _SHARED_FIELDS:
            shared: dict[str, str] = {}
            values = [shared.setdefault(v, v) for v in values]
        columns.append(values)
    return EventRows(columns, min(timestamps, default=0), max(timestamps, default=0))


def concat_rows(parts: Sequence[EventRows]) -> list[list[Any]]:
    """One column-oriented insert block from several messages' rows."""
    width = len(EVENT_COLUMNS)
    return [list(chain.from_iterable(part.columns[i] for part in parts)) for i in range(width)]


def event_columns(events: Sequence[RequestEvent], batch_ids: Sequence[str]) -> list[list[Any]]:
    """Column-oriented data for ``EVENT_COLUMNS``; ``batch_ids[i]`` is the batch of event i."""
    rows = event_rows(events, "")
    rows.columns[1] = list(batch_ids)
    return rows.columns


def sample_columns(samples: Sequence[WorkerSample]) -> list[list[Any]]:
    """Column-oriented data for ``SAMPLE_COLUMNS``."""
    return [
        [epoch_ms(s) for s in samples],
        [s.worker_id for s in samples],
        [s.hostname for s in samples],
        [max(0, min(s.pid, _UINT32_MAX)) for s in samples],
        [s.cpu_percent for s in samples],
        [s.rss_mb for s in samples],
        [s.loaded_models for s in samples],
        [s.model_memory_mb for s in samples],
        [max(0, s.batches) for s in samples],
        [max(0, s.rows) for s in samples],
    ]
