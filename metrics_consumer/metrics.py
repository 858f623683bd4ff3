"""Prometheus figures of the consumer, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConsumerMetrics:
    """Events inserted, batch sizes, insert latency, lag and dead-lettered messages."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_inserted = Counter(
            "modelgate_consumer_events_inserted", "Request events stored in ClickHouse", registry=r
        )
        self.samples_inserted = Counter(
            "modelgate_consumer_samples_inserted", "Worker samples stored in ClickHouse", registry=r
        )
        self.messages_received = Counter(
            "modelgate_consumer_messages_received", "Messages taken from the queue", registry=r
        )
        self.duplicates_dropped = Counter(
            "modelgate_consumer_duplicates_dropped",
            "Rows dropped because they were already stored",
            registry=r,
        )
        self.dead_lettered = Counter(
            "modelgate_consumer_dead_lettered",
            "Undecodable messages sent to the dead-letter exchange",
            registry=r,
        )
        self.insert_failures = Counter(
            "modelgate_consumer_insert_failures", "Failed insert attempts (retried)", registry=r
        )
        self.dedup_lookups = Counter(
            "modelgate_consumer_dedup_lookups", "Lookups of already stored rows", registry=r
        )
        self.batch_rows = Histogram(
            "modelgate_consumer_batch_rows",
            "Rows per ClickHouse insert",
            buckets=(10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000),
            registry=r,
        )
        self.insert_seconds = Histogram(
            "modelgate_consumer_insert_seconds",
            "Duration of one ClickHouse insert",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.lag_seconds = Gauge(
            "modelgate_consumer_lag_seconds",
            "Now minus the oldest event of the last inserted batch",
            registry=r,
        )
        self.buffered_rows = Gauge(
            "modelgate_consumer_buffered_rows", "Rows waiting to be inserted", registry=r
        )
        self.queue_consumers = Gauge(
            "modelgate_consumer_queue_consumers",
            "Consumers of the events queue, this one included, when last counted (counting stops "
            "once another was seen: from then on every batch is checked for duplicates)",
            registry=r,
        )
