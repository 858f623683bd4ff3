"""The metrics pipeline against real RabbitMQ and ClickHouse: every event stored exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from infra.topology import DeclaredTopology
from metrics_consumer.decoding import event_columns
from metrics_consumer.store import EventStore
from tests.integration.metrics_support import (
    ConsumerProcess,
    batches_of,
    consumer_env,
    counts,
    make_events,
    publish,
    wait_for_count,
)
from tests.services import EmbeddedClickHouse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_200k_events_published_in_batches_are_stored_exactly_once(
    topology: DeclaredTopology,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    await migrate_database(clickhouse_server, ch_database)
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
        health, metrics = (
            await http_get(consumer.metrics_url + "/health"),
            await http_get(consumer.metrics_url + "/metrics"),
        )
    finally:
        consumer.stop()
    assert (total, unique) == (len(events), len(events)), consumer.log_tail()
    assert health[0] == 200 and '"status": "ok"' in health[1]
    assert "modelgate_consumer_events_inserted_total 200000.0" in metrics[1]
    assert "modelgate_consumer_duplicates_dropped_total 1500.0" in metrics[1]
    assert "modelgate_consumer_lag_seconds" in metrics[1]


async def http_get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_consumer_killed_mid_stream_and_restarted_stores_every_event_once(
    topology: DeclaredTopology,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    await migrate_database(clickhouse_server, ch_database)
    events = make_events(120_000, ["api-a", "api-b"], span_s=300, seed=11)
    await publish(topology.events, batches_of(events, 500))
    env = consumer_env(namespace, clickhouse_server, ch_database, consumer_batch_rows=5_000)
    first = ConsumerProcess(tmp_path, env)
    first.start()
    try:
        for _ in range(600):
            stored, _ = await counts(clickhouse_server, ch_database)
            if stored >= 15_000:
                break
            await asyncio.sleep(0.05)
        first.kill()  # SIGKILL: rows inserted but not yet acked come back redelivered
    finally:
        first.kill()
    at_kill, _ = await counts(clickhouse_server, ch_database)
    assert 0 < at_kill < len(events), f"kill was not mid-stream ({at_kill} stored)"
    second = ConsumerProcess(tmp_path, env)
    second.start()
    try:
        total, unique = await wait_for_count(
            clickhouse_server, ch_database, len(events), timeout=180, what="after restart"
        )
    finally:
        second.stop()
    assert (total, unique) == (len(events), len(events)), second.log_tail()


async def test_clickhouse_down_for_10s_mid_stream_loses_and_doubles_nothing(
    topology: DeclaredTopology, namespace: str, tmp_path: Path
) -> None:
    server = EmbeddedClickHouse(tmp_path / "ch-data")
    server.start()
    database = "outage"
    consumer = ConsumerProcess(
        tmp_path, consumer_env(namespace, server.url, database, consumer_retry_max_s=1)
    )
    try:
        await migrate_database(server.url, database)
        events = make_events(60_000, ["api-x"], span_s=120, seed=5)
        batches = batches_of(events, 500)
        consumer.start()
        await publish(topology.events, batches[:40])
        await wait_for_count(server.url, database, 20_000, timeout=60, what="before outage")
        server.stop()
        # Published while ClickHouse is down: held unacked by the consumer or in the queue.
        await publish(topology.events, batches[40:])
        await asyncio.sleep(10)
        assert consumer.process is not None and consumer.process.poll() is None, (
            "consumer exited during the outage:\n" + consumer.log_tail()
        )
        server.start()
        total, unique = await wait_for_count(
            server.url, database, len(events), timeout=120, what="after outage"
        )
        assert (total, unique) == (len(events), len(events)), consumer.log_tail()
        assert "retrying" in consumer.log_tail()
    finally:
        consumer.stop()
        server.stop()


async def test_malformed_message_is_dead_lettered_with_reason_and_stream_goes_on(
    topology: DeclaredTopology,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    await migrate_database(clickhouse_server, ch_database)
    consumer = ConsumerProcess(tmp_path, consumer_env(namespace, clickhouse_server, ch_database))
    consumer.start()
    try:
        before = batches_of(make_events(1_000, ["api-m"], seed=1), 500)
        after = batches_of(make_events(1_000, ["api-m"], seed=2), 500)
        await publish(topology.events, before)
        await topology.events.publish(
            aio_pika.Message(
                b'{"batch_id": "bad", "ingress_id": "i", "events": [{"ts": "2026-01-01T00:00:00Z",'
                b' "api_id": "a", "status_code": 200}]}',
                message_id="bad-batch",
            ),
            routing_key="request.batch",
        )
        await topology.events.publish(
            aio_pika.Message(b"\x00not json", message_id="garbage"), routing_key="request.batch"
        )
        await publish(topology.events, after)
        total, unique = await wait_for_count(
            clickhouse_server, ch_database, 2_000, timeout=60, what="around malformed messages"
        )
        assert (total, unique) == (2_000, 2_000)
        dead = {}
        for _ in range(100):
            message = await topology.dead_letter_queue.get(no_ack=True, fail=False)
            if message is None:
                if len(dead) == 2:
                    break
                await asyncio.sleep(0.1)
                continue
            dead[message.message_id] = message
        assert set(dead) == {"bad-batch", "garbage"}
        reason = str(dead["bad-batch"].headers["x-modelgate-dead-reason"])
        assert "events.0.event_id: field required" in reason
        assert dead["garbage"].body == b"\x00not json"
        assert "invalid" in str(dead["garbage"].headers["x-modelgate-dead-reason"]).lower()
    finally:
        consumer.stop()


async def test_batches_already_stored_by_a_previous_process_are_not_stored_again(
    topology: DeclaredTopology,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """The state a crash between insert and ack leaves: rows stored, messages back in the queue.
    A fresh consumer finds them by batch id and stores only what is missing."""
    await migrate_database(clickhouse_server, ch_database)
    events = make_events(20_000, ["api-r"], seed=13)
    batches = batches_of(events, 500)
    client = await create_async_client(clickhouse_server)
    try:
        store = EventStore(client, ch_database)
        for batch in batches[:10]:  # fully stored
            await store.insert_events(event_columns(batch.events, [batch.batch_id] * 500))
        partial = batches[10]  # half stored: an insert cut short
        await store.insert_events(event_columns(partial.events[:250], [partial.batch_id] * 250))
    finally:
        await client.close()
    await publish(topology.events, batches)
    consumer = ConsumerProcess(tmp_path, consumer_env(namespace, clickhouse_server, ch_database))
    consumer.start()
    try:
        total, unique = await wait_for_count(
            clickhouse_server, ch_database, len(events), timeout=60, what="republished batches"
        )
        metrics = await http_get(consumer.metrics_url + "/metrics")
    finally:
        consumer.stop()
    assert (total, unique) == (len(events), len(events)), consumer.log_tail()
    assert "modelgate_consumer_duplicates_dropped_total 5250.0" in metrics[1]
