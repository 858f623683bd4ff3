"""Writing buffered messages to ClickHouse exactly once: duplicate removal, insert, retry.

Duplicates come from redelivery (the consumer died or lost its channel after ClickHouse accepted
rows but before the ack) and from republished batches. A batch id inserted by this process is
remembered in a bounded LRU; a batch that may have been stored before (redelivered, seen during
the warm-up after a start, part of an insert attempt that failed, or any batch once other
consumers compete on the queue: a copy may reach a consumer other than the one that stored the
original) has its stored event ids looked up and removed. The same applies to worker samples,
keyed by (worker, time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from metrics_consumer.decoding import (
    EventRows,
    FeedbackRows,
    concat_feedback,
    concat_rows,
    epoch_ms,
    sample_columns,
)
from metrics_consumer.metrics import ConsumerMetrics
from metrics_consumer.store import EventStore
from schemas.messages import WorkerSample

log = logging.getLogger(__name__)


class RecentBatches:
    """A bounded LRU of batch ids known to be stored."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, batch_id: str) -> None:
        self._ids[batch_id] = None
        self._ids.move_to_end(batch_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


@dataclass
class Pending:
    """One decoded message waiting for its rows to be stored; ``delivery`` is acked afterwards
    (it holds only what an ack needs, so the message body is freed once decoded)."""

    delivery: Any
    batch_id: str
    events: EventRows | None = None
    sample: WorkerSample | None = None
    feedback: FeedbackRows | None = None
    redelivered: bool = False
    received_at: float = 0.0
    """When it arrived (monotonic clock): a redelivered message is looked up only once the
    insert its dead consumer may have had under way has had time to commit."""

    @property
    def rows(self) -> int:
        return (
            (len(self.events) if self.events is not None else 0)
            + (1 if self.sample is not None else 0)
            + (len(self.feedback) if self.feedback is not None else 0)
        )


@dataclass
class WriteOutcome:
    events: int = 0
    samples: int = 0
    feedback: int = 0
    duplicates: int = 0
    attempts: int = 0


class BatchWriter:
    """Stores buffered messages exactly once, retrying with backoff until ClickHouse accepts."""

    def __init__(
        self,
        store: EventStore,
        metrics: ConsumerMetrics,
        *,
        cache_size: int = 100_000,
        warmup_s: float = 60.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
        settle_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.recent = RecentBatches(cache_size)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.settle_s = settle_s
        self.clock = clock
        self.warmup_until = clock() + warmup_s
        self.competing = False
        """Other consumers share the queue (now or since this process started): a batch this one
        has not stored itself may have been stored by another, so every batch is looked up."""
        self.healthy = True
        self.last_error: str = ""

    def needs_lookup(self, pending: Pending) -> bool:
        return pending.redelivered or self.competing or self.clock() < self.warmup_until

    async def write(self, batch: Sequence[Pending]) -> WriteOutcome:
        """Insert the new rows of ``batch``; returns once they are stored (never drops them)."""
        outcome = WriteOutcome()
        # A consumer killed mid-insert leaves ClickHouse finishing it while the broker already
        # redelivers its messages: look them up only after that insert has committed.
        settle = max((p.received_at for p in batch if p.redelivered), default=None)
        if settle is not None and self.settle_s > 0:
            wait = settle + self.settle_s - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
        delay = self.retry_initial_s
        lookup_all = False
        while True:
            outcome.attempts += 1
            try:
                await self._write_once(batch, lookup_all, outcome)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The failed insert may still have been committed: look everything up next time.
                lookup_all = True
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                self.metrics.insert_failures.inc()
                log.warning(
                    "insert of %d messages failed (attempt %d), retrying in %.1fs: %s",
                    len(batch),
                    outcome.attempts,
                    delay,
                    self.last_error,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self.healthy = True
            self.last_error = ""
            for pending in batch:
                self.recent.add(pending.batch_id)
            return outcome

    async def _write_once(
        self, batch: Sequence[Pending], lookup_all: bool, outcome: WriteOutcome
    ) -> None:
        fresh: list[Pending] = []
        seen_batches: set[str] = set()
        duplicates = 0
        for pending in batch:
            if pending.batch_id in self.recent or pending.batch_id in seen_batches:
                duplicates += pending.rows
                continue
            seen_batches.add(pending.batch_id)
            fresh.append(pending)
        to_check = [p for p in fresh if lookup_all or self.needs_lookup(p)]
        stored_events, stored_samples = await self._stored(to_check)
        stored_feedback = await self._stored_feedback(to_check)

        parts: list[EventRows] = []
        samples: list[WorkerSample] = []
        feedback: list[FeedbackRows] = []
        seen_events: set[str] = set()
        for pending in fresh:
            reports = pending.feedback
            if reports is not None and len(reports):
                keep = [
                    not (fid in stored_feedback or fid in seen_events)
                    for fid in reports.feedback_ids
                ]
                seen_events.update(reports.feedback_ids)
                duplicates += len(keep) - sum(keep)
                if any(keep):
                    feedback.append(reports if all(keep) else reports.select(keep))
            rows = pending.events
            if rows is not None and len(rows):
                keep = [
                    not (event_id in stored_events or event_id in seen_events)
                    for event_id in rows.event_ids
                ]
                seen_events.update(rows.event_ids)
                kept = sum(keep)
                duplicates += len(keep) - kept
                if kept == len(keep):
                    parts.append(rows)
                elif kept:
                    parts.append(rows.select(keep))
            sample = pending.sample
            if sample is not None:
                key = (sample.worker_id, epoch_ms(sample))
                if key in stored_samples:
                    duplicates += 1
                else:
                    stored_samples.add(key)
                    samples.append(sample)
        events = sum(len(part) for part in parts)

        started = time.perf_counter()
        if events:
            await self.store.insert_events(concat_rows(parts))
        if samples:
            await self.store.insert_samples(sample_columns(samples))
        reported = sum(len(part) for part in feedback)
        if reported:
            await self.store.insert_feedback(concat_feedback(feedback))
        elapsed = time.perf_counter() - started
        # Only once everything is stored do the figures count (a retry recounts from scratch).
        outcome.events, outcome.samples, outcome.duplicates = events, len(samples), duplicates
        outcome.feedback = reported
        if events or samples:
            self.metrics.insert_seconds.observe(elapsed)
            self.metrics.batch_rows.observe(events + len(samples))
        self.metrics.events_inserted.inc(events)
        self.metrics.samples_inserted.inc(len(samples))
        self.metrics.duplicates_dropped.inc(duplicates)
        if events:
            oldest_ms = min(part.ts_min for part in parts)
            self.metrics.lag_seconds.set(max(0.0, time.time() - oldest_ms / 1000))

    async def _stored_feedback(self, to_check: Sequence[Pending]) -> set[str]:
        """Feedback ids already stored of the messages that may have been stored before."""
        reports = [p.feedback for p in to_check if p.feedback is not None and len(p.feedback)]
        if not reports:
            return set()
        self.metrics.dedup_lookups.inc()
        return await self.store.stored_feedback_ids(
            [r.batch_id for r in reports],
            min(r.ts_min for r in reports),
            max(r.ts_max for r in reports),
        )

    async def _stored(self, to_check: Sequence[Pending]) -> tuple[set[str], set[tuple[str, int]]]:
        stored_events: set[str] = set()
        stored_samples: set[tuple[str, int]] = set()
        with_events = [p.events for p in to_check if p.events is not None and len(p.events)]
        if with_events:
            stored_events = await self.store.stored_event_ids(
                [p.batch_id for p in to_check if p.events is not None and len(p.events)],
                min(rows.ts_min for rows in with_events),
                max(rows.ts_max for rows in with_events),
            )
            self.metrics.dedup_lookups.inc()
        with_samples = [p.sample for p in to_check if p.sample is not None]
        if with_samples:
            times = [epoch_ms(s) for s in with_samples]
            stored_samples = await self.store.stored_sample_keys(
                [s.worker_id for s in with_samples], min(times), max(times)
            )
            self.metrics.dedup_lookups.inc()
        return stored_events, stored_samples
