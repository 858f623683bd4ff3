"""The metrics pipeline against real RabbitMQ and ClickHouse: every event stored exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import pytest

from infra.clickhouse import create_async_client
from infra.topology import DeclaredTopology
from tests.integration.metrics_support import (
    ConsumerProcess,
    batches_of,
    consumer_env,
    counts,
    make_events,
    migrate,
    publish,
    wait_for_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_200k_events_published_in_batches_are_stored_exactly_once(
    topology: DeclaredTopology, clickhouse_server: str, ch_database: str, namespace: str,
    tmp_path: Path,
) -> None:
    await migrate(clickhouse_server, ch_database)
    events = make_events(200_000, [f"api-{i}" for i in range(5)], span_s=600)
    batches = batches_of(events, 500)
    consumer = ConsumerProcess(tmp_path, consumer_env(namespace, clickhouse_server, ch_database))
    consumer.start()
    try:
        await publish(topology.events, batches)
        # A republished batch (same batch id, as a publisher retry sends) must not double.
        await publish(topology.events, batches[:3])
        total, unique = await wait_for_count(
            clickhouse_server, ch_database, len(events), timeout=180, what="200k events"
        )
    finally:
        consumer.stop()
    assert (total, unique) == (len(events), len(events)), consumer.log_tail()
