"""Settings of the metrics consumer (environment ``MODELGATE_CONSUMER_*`` plus the common ones)."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from infra.settings import CommonSettings


class ConsumerSettings(CommonSettings):
    """How the consumer batches, retries and reports."""

    consumer_id: str = Field(
        default_factory=lambda: f"metrics-consumer-{socket.gethostname()}-{os.getpid()}"
    )
    """Name of this process in ``/health`` (so a supervisor knows it reached the right one)."""

    consumer_metrics_host: str = "127.0.0.1"
    """Address of the ``/metrics`` and ``/health`` HTTP server."""

    consumer_metrics_port: int = 9200
    """Port of the ``/metrics`` and ``/health`` HTTP server (0: any free port)."""

    consumer_batch_rows: int = 12_000
    """Rows buffered before a flush; ClickHouse likes thousands of rows per insert."""

    consumer_flush_interval_s: float = 0.5
    """Longest time a row waits in the buffer before it is flushed (bounds the lag)."""

    consumer_prefetch: int = 48
    """Unacknowledged messages the broker may hand over: the memory bound. A flush also starts
    once half of them are buffered, so a full prefetch never stalls the stream. Measured with
    500-event messages (bench/RESULTS.md): 48 -> 89k events/s, 230 MB peak RSS; 64 -> 100k/s,
    313 MB; 128 -> no faster, ~80 MB more."""

    consumer_retry_initial_s: float = 0.2
    """First wait after a failed insert; doubled after each failure up to the maximum."""

    consumer_retry_max_s: float = 5.0
    """Longest wait between insert attempts while ClickHouse is unreachable."""

    consumer_dedup_cache_size: int = 100_000
    """Batch ids of recently inserted batches remembered to drop republished copies."""

    consumer_dedup_warmup_s: float = 60.0
    """After a start, every batch is checked against stored rows for this long (copies of
    batches inserted by a previous process are not in the in-memory cache)."""

    consumer_redelivery_settle_s: float = Field(1.0, ge=0)
    """A redelivered message is checked against stored rows no sooner than this after it arrived:
    the consumer that died holding it may have left an insert of it that ClickHouse had received
    whole and still commits (another consumer gets the message at once)."""

    consumer_peer_check_s: float = Field(2.0, gt=0)
    """Seconds between two checks of how many consumers share the events queue. Once another one
    has been seen, every batch is checked against stored rows until this process stops (a copy of
    a batch, or a batch redelivered from a consumer that died, may come to a consumer other than
    the one that stored it); a consumer alone keeps checking only the batches that need it."""
