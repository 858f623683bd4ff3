"""Exactly-once logic of the batch writer, over an in-memory store (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from metrics_consumer.decoding import EVENT_COLUMNS, SAMPLE_COLUMNS, event_rows
from metrics_consumer.metrics import ConsumerMetrics
from metrics_consumer.writer import BatchWriter, Pending, RecentBatches
from schemas.messages import RequestEvent, WorkerSample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryStore:
    """Keeps rows like the tables would; can fail the next inserts (after storing them, too)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []  # (event_id, batch_id)
        self.samples: list[tuple[str, int]] = []
        self.fail_next = 0
        self.store_then_fail = False
        self.lookups = 0

    async def stored_event_ids(self, batch_ids: list[str], ts_min: int, ts_max: int) -> set[str]:
        self.lookups += 1
        return {e for e, b in self.events if b in batch_ids}

    async def stored_sample_keys(self, workers: list[str], ts_min: int, ts_max: int) -> set[Any]:
        return {s for s in self.samples if s[0] in workers}

    async def insert_events(self, columns: list[list[Any]]) -> None:
        named = dict(zip(EVENT_COLUMNS, columns, strict=True))
        if self.fail_next and not self.store_then_fail:
            self.fail_next -= 1
            raise ConnectionError("ClickHouse is down")
        self.events += list(zip(named["event_id"], named["batch_id"], strict=True))
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("connection reset after the insert was committed")

    async def insert_samples(self, columns: list[list[Any]]) -> None:
        named = dict(zip(SAMPLE_COLUMNS, columns, strict=True))
        self.samples += list(zip(named["worker_id"], named["ts"], strict=True))


def pending(batch_id: str, ids: list[str], redelivered: bool = False) -> Pending:
    events = [
        RequestEvent(event_id=i, ts=T0 + timedelta(seconds=n), api_id="a", status_code=200)
        for n, i in enumerate(ids)
    ]
    return Pending(
        delivery=None,
        batch_id=batch_id,
        events=event_rows(events, batch_id),
        redelivered=redelivered,
    )


def writer(store: MemoryStore, warmup_s: float = 0.0) -> BatchWriter:
    return BatchWriter(
        store, ConsumerMetrics(), warmup_s=warmup_s, retry_initial_s=0.0, retry_max_s=0.0
    )


async def test_stores_each_event_once_and_drops_a_republished_batch_by_its_id() -> None:
    store = MemoryStore()
    w = writer(store)
    await w.write([pending("b1", ["e1", "e2"]), pending("b1", ["e1", "e2"])])
    outcome = await w.write([pending("b1", ["e1", "e2"]), pending("b2", ["e3"])])
    assert [e for e, _ in store.events] == ["e1", "e2", "e3"]
    assert outcome.duplicates == 2 and store.lookups == 0


async def test_redelivered_batch_is_checked_against_stored_rows() -> None:
    store = MemoryStore()
    store.events = [("e1", "b1")]  # stored by a process that died before acking
    w = writer(store)
    outcome = await w.write([pending("b1", ["e1", "e2"], redelivered=True)])
    assert sorted(e for e, _ in store.events) == ["e1", "e2"]
    assert outcome.events == 1 and outcome.duplicates == 1 and store.lookups == 1


async def test_warm_up_checks_batches_a_previous_process_may_have_stored() -> None:
    store = MemoryStore()
    store.events = [("e1", "b1")]
    w = writer(store, warmup_s=60)
    await w.write([pending("b1", ["e1"])])  # not flagged redelivered: a republished copy
    assert store.events == [("e1", "b1")]


async def test_retries_until_stored_and_never_doubles_an_insert_that_was_committed() -> None:
    store = MemoryStore()
    store.fail_next, store.store_then_fail = 2, True
    w = writer(store)
    outcome = await w.write([pending("b1", ["e1", "e2"])])
    assert sorted(e for e, _ in store.events) == ["e1", "e2"]
    assert outcome.attempts == 2 and outcome.duplicates == 2 and w.healthy and not w.last_error


async def test_a_retried_write_counts_each_dropped_copy_once() -> None:
    store = MemoryStore()
    w = writer(store)
    await w.write([pending("b1", ["e1"])])
    store.fail_next = 2
    outcome = await w.write([pending("b1", ["e1"]), pending("b2", ["e2"])])
    assert outcome.attempts == 3 and outcome.duplicates == 1
    assert w.metrics.registry.get_sample_value("modelgate_consumer_duplicates_dropped_total") == 1


async def test_retries_while_clickhouse_is_down() -> None:
    store = MemoryStore()
    store.fail_next = 3
    w = writer(store)
    outcome = await w.write([pending("b1", ["e1"])])
    assert store.events == [("e1", "b1")] and outcome.attempts == 4


async def test_worker_samples_are_deduplicated_by_worker_and_time() -> None:
    store = MemoryStore()
    w = writer(store)
    sample = WorkerSample(worker_id="w", cpu_percent=1, rss_mb=2, ts=T0)
    await w.write([Pending(delivery=None, batch_id="s1", sample=sample)])
    await w.write([Pending(delivery=None, batch_id="s1-copy", sample=sample, redelivered=True)])
    assert len(store.samples) == 1


def test_recent_batches_is_bounded_and_forgets_the_oldest() -> None:
    recent = RecentBatches(2)
    for batch_id in ("a", "b", "c"):
        recent.add(batch_id)
    assert len(recent) == 2 and "a" not in recent and "c" in recent
