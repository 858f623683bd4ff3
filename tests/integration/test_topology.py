"""The broker topology of DESIGN.md declares on the real RabbitMQ, idempotently."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from infra.topology import REQUEST_EVENTS_KEY, WORKER_SAMPLE_KEY, Topology, declare_topology


async def test_topology_declares_twice_without_error(
    amqp: AbstractRobustConnection, topology_names: Topology
) -> None:
    """Every service declares at start; the second declaration must converge, not fail."""
    channel = await amqp.channel()
    first = await declare_topology(channel, topology_names)
    second = await declare_topology(await amqp.channel(), topology_names)
    assert first.metrics_events.name == second.metrics_events.name == topology_names.metrics_events
    for name in topology_names.queue_names():
        declared = await channel.declare_queue(name, passive=True)
        assert declared.name.startswith(topology_names.namespace + ".")


async def test_events_are_routed_to_metrics_queue_by_kind(
    amqp: AbstractRobustConnection, topology_names: Topology
) -> None:
    """request.* and worker.* events reach metrics.events; other keys do not."""
    channel = await amqp.channel(publisher_confirms=True)
    topology = await declare_topology(channel, topology_names)
    for key in (REQUEST_EVENTS_KEY, WORKER_SAMPLE_KEY, "unrelated.thing"):
        await topology.events.publish(aio_pika.Message(key.encode()), routing_key=key)
    received = []
    for _ in range(2):
        message = await topology.metrics_events.get(timeout=5, fail=True)
        assert message is not None
        received.append(message.body.decode())
        await message.ack()
    assert sorted(received) == sorted([REQUEST_EVENTS_KEY, WORKER_SAMPLE_KEY])
    assert await topology.metrics_events.get(fail=False) is None


def test_namespaces_do_not_share_queues() -> None:
    """Two namespaces on one broker get distinct names for every queue and exchange."""
    a, b = Topology("ns-a"), Topology("ns-b")
    assert not set(a.queue_names()) & set(b.queue_names())
    assert not set(a.exchange_names()) & set(b.exchange_names())
