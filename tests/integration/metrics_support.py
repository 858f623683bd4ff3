"""Helpers of the metrics-pipeline tests: synthetic events, publishing, a consumer subprocess."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange

from infra.clickhouse import create_async_client
from infra.topology import REQUEST_EVENTS_KEY
from metrics_consumer.decoding import event_columns
from metrics_consumer.store import EventStore
from schemas.messages import EVENT_COLUMN_OF, RequestEvent, RequestEventBatch, encode
from tests.services import free_port

STATUSES = [200] * 90 + [400] * 4 + [404, 429, 429] + [500, 503, 504]


def make_events(
    count: int,
    api_ids: Sequence[str],
    *,
    start: datetime | None = None,
    span_s: float = 60.0,
    seed: int = 7,
) -> list[RequestEvent]:
    """Events spread over ``span_s`` seconds from ``start``, log-normal latencies (skewed)."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC) - timedelta(seconds=span_s)
    events = []
    for i in range(count):
        total = rng.lognormvariate(2.5, 0.9)
        events.append(
            RequestEvent(
                event_id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                ts=start + timedelta(seconds=span_s * i / max(1, count)),
                api_id=api_ids[i % len(api_ids)],
                version_key="m-1",
                status_code=rng.choice(STATUSES),
                total_ms=total,
                inference_ms=total * 0.6,
                rows=1,
                cpu_ms=0.4,
                worker_id=f"w{i % 3}",
                worker_rss_mb=180.0 + i % 5,
                prediction="setosa",
            )
        )
    return events


_FIELD_OF_COLUMN = {column: name for name, column in EVENT_COLUMN_OF.items()}


def event_values(event: RequestEvent, columns: Sequence[str], batch_id: str = "b") -> list[Any]:
    """One event's values for some ``request_events`` columns, by column name."""
    return [
        batch_id if column == "batch_id" else getattr(event, _FIELD_OF_COLUMN[column])
        for column in columns
    ]


def batches_of(events: Sequence[RequestEvent], size: int = 500) -> list[RequestEventBatch]:
    return [
        RequestEventBatch(
            batch_id=uuid.uuid4().hex, ingress_id="test-ingress", events=list(events[i : i + size])
        )
        for i in range(0, len(events), size)
    ]


async def publish(exchange: AbstractExchange, batches: Sequence[RequestEventBatch]) -> None:
    """Publish with confirms, persistent, ``message_id`` = batch id (as ingress does)."""
    for start in range(0, len(batches), 50):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        encode(batch),
                        message_id=batch.batch_id,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=REQUEST_EVENTS_KEY,
                )
                for batch in batches[start : start + 50]
            )
        )


async def store_events(client: Any, database: str, events: Sequence[RequestEvent]) -> None:
    """Insert events as the consumer does (columnar, batch id "b"), 50,000 per insert."""
    store = EventStore(client, database)
    for start in range(0, len(events), 50_000):
        chunk = events[start : start + 50_000]
        await store.insert_events(event_columns(chunk, ["b"] * len(chunk)))


async def counts(url: str, database: str) -> tuple[int, int]:
    """(count(), uniqExact(event_id)) of request_events."""
    client = await create_async_client(url)
    try:
        result = await client.query(
            f"SELECT count(), uniqExact(event_id) FROM {database}.request_events"
        )
        row = result.result_rows[0]
        return int(row[0]), int(row[1])
    finally:
        await client.close()


async def wait_for_count(
    url: str, database: str, expected: int, timeout: float, what: str = ""
) -> tuple[int, int]:
    """Poll until count() reaches ``expected`` (and a little longer, to catch doubles)."""
    deadline = time.monotonic() + timeout
    last = (0, 0)
    while time.monotonic() < deadline:
        with suppress(Exception):  # ClickHouse may be down on purpose in some tests
            last = await counts(url, database)
        if last[0] >= expected:
            await asyncio.sleep(1.0)
            return await counts(url, database)
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"{what}: only {last[0]} of {expected} events stored after {timeout:.0f}s (uniq {last[1]})"
    )


class ConsumerProcess:
    """``python -m modelgate.cli metrics-consumer`` as a real subprocess, with its log kept."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}
        self.env.setdefault("MODELGATE_CONSUMER_METRICS_PORT", str(free_port()))
        self.log_path = log_dir / f"consumer-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['MODELGATE_CONSUMER_METRICS_PORT']}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelgate.cli", "metrics-consumer"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def consumer_env(
    namespace: str, clickhouse_url: str, database: str, **extra: Any
) -> dict[str, str]:
    env = {
        "MODELGATE_NAMESPACE": namespace,
        "MODELGATE_CLICKHOUSE_URL": clickhouse_url,
        "MODELGATE_CLICKHOUSE_DATABASE": database,
        "MODELGATE_LOG_LEVEL": "INFO",
    }
    env.update({f"MODELGATE_{k.upper()}": str(v) for k, v in extra.items()})
    return env
