"""Two metrics consumers competing on the events queue, one killed: every event stored once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from infra.migrate import migrate_database
from infra.topology import DeclaredTopology
from tests.integration.metrics_support import (
    ConsumerProcess,
    batches_of,
    consumer_env,
    counts,
    make_events,
    publish,
    wait_for_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def queue_state(amqp: Any, topology: DeclaredTopology) -> tuple[int, int]:
    """(messages ready, consumers) of the events queue."""
    channel = await amqp.channel()
    try:
        declared = await (await channel.get_underlay_channel()).queue_declare(
            topology.names.metrics_events, passive=True
        )
    finally:
        await channel.close()
    return declared.message_count or 0, declared.consumer_count or 0


async def test_two_consumers_one_killed_mid_stream_store_every_event_exactly_once(
    amqp: Any,
    topology: DeclaredTopology,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Both consumers are past their start-up warm-up (the time after a start when every batch
    is looked up), as in a deployment running for a while. Batches published twice (a publisher's
    retry keeps the batch id) reach either consumer; the one killed with SIGKILL leaves inserted
    but unacked messages that the survivor gets redelivered."""
    await migrate_database(clickhouse_server, ch_database)
    events = make_events(120_000, ["api-a", "api-b"], span_s=300, seed=17)
    batches = batches_of(events, 500)
    env = consumer_env(
        namespace,
        clickhouse_server,
        ch_database,
        consumer_batch_rows=5_000,
        consumer_dedup_warmup_s=0,
        consumer_peer_check_s=0.2,
    )
    victim, survivor = ConsumerProcess(tmp_path, env), ConsumerProcess(tmp_path, dict(env))
    victim.start()
    survivor.start()
    try:
        for _ in range(600):
            if (await queue_state(amqp, topology))[1] >= 2:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("two consumers not consuming after 60 s")
        # Every 3rd batch again at the end: its copy may go to the consumer that did not store it.
        await publish(topology.events, batches + batches[::3])
        for _ in range(600):
            stored, _ = await counts(clickhouse_server, ch_database)
            if stored >= 20_000:
                break
            await asyncio.sleep(0.05)
        victim.kill()  # SIGKILL: what it inserted but did not ack goes to the survivor
        at_kill, _ = await counts(clickhouse_server, ch_database)
        assert 0 < at_kill < len(events), f"kill was not mid-stream ({at_kill} stored)"
        await wait_for_count(
            clickhouse_server, ch_database, len(events), timeout=120, what="two consumers"
        )
        for _ in range(600):  # the copies published last are taken too
            if (await queue_state(amqp, topology))[0] == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # a flush interval and an insert after the last delivery
        total, unique = await counts(clickhouse_server, ch_database)
    finally:
        victim.kill()
        survivor.stop()
    assert (total, unique) == (len(events), len(events)), survivor.log_tail()
