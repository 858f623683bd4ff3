"""The broker topology of DESIGN.md, declared in one place under a namespace prefix.

Every service and every test declares through ``declare_topology``: declarations are idempotent,
so each process declares what it uses at start and the broker converges on one shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

REQUEST_EVENTS_KEY = "request.batch"
WORKER_SAMPLE_KEY = "worker.sample"
VERSION_READY_KEY = "version.ready"
"""``VersionReady`` reports of predictors on ``events``; only ingress binds it (its own queue)."""
FEEDBACK_KEY = "feedback"
"""``FeedbackBatch`` messages of ingress's feedback route on ``events``, bound to the metrics
queue (stored in ClickHouse ``feedback``)."""
INGRESS_PEER_KEY = "ingress.peer"
"""Ingress replicas' ``IngressHeartbeat`` on ``events``; only ingress binds it (its own queue)."""


@dataclass(frozen=True)
class Topology:
    """Names of every exchange and queue for one namespace."""

    namespace: str = "modelgate"

    @property
    def predict_requests(self) -> str:
        return f"{self.namespace}.predict.requests"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def metrics_events(self) -> str:
        return f"{self.namespace}.metrics.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.events.dead"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.events.dead"

    @property
    def control_exchange(self) -> str:
        return f"{self.namespace}.control"

    @property
    def registry_snapshot(self) -> str:
        return f"{self.namespace}.registry.snapshot"

    def queue_names(self) -> list[str]:
        return [
            self.predict_requests,
            self.metrics_events,
            self.dead_letter_queue,
            self.registry_snapshot,
        ]

    @property
    def alerts_notify(self) -> str:
        """Alert transitions the notifier fans out (bound to ``events``, declared by it)."""
        return f"{self.namespace}.alerts.notify"

    @property
    def alerts_deliveries(self) -> str:
        return f"{self.namespace}.alerts.deliveries"

    @property
    def alerts_dead(self) -> str:
        return f"{self.namespace}.alerts.dead"

    @property
    def alerts_lease(self) -> str:
        """The alert evaluator's single-active-consumer lease (declared by the management API)."""
        return f"{self.namespace}.alerts.lease"

    def service_queue_names(self) -> list[str]:
        """Queues a service declares on its own (the notifier's, the alert lease); deleted with
        the namespace."""
        return [self.alerts_notify, self.alerts_deliveries, self.alerts_dead, self.alerts_lease]

    def exchange_names(self) -> list[str]:
        return [self.events_exchange, self.dead_letter_exchange, self.control_exchange]


@dataclass
class DeclaredTopology:
    """Handles on the declared exchanges and queues, bound to one channel."""

    names: Topology
    events: AbstractExchange
    control: AbstractExchange
    dead_letter: AbstractExchange
    predict_requests: AbstractQueue
    metrics_events: AbstractQueue
    dead_letter_queue: AbstractQueue
    registry_snapshot: AbstractQueue


async def declare_topology(channel: AbstractChannel, names: Topology) -> DeclaredTopology:
    """Declare every exchange and queue of the namespace (idempotent)."""
    events = await channel.declare_exchange(
        names.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead_letter = await channel.declare_exchange(
        names.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    control = await channel.declare_exchange(
        names.control_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_letter_queue = await channel.declare_queue(
        names.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letter_queue.bind(dead_letter, routing_key="#")
    metrics_events = await channel.declare_queue(
        names.metrics_events,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": names.dead_letter_exchange,
        },
    )
    await metrics_events.bind(events, routing_key="request.#")
    await metrics_events.bind(events, routing_key="worker.#")
    await metrics_events.bind(events, routing_key=FEEDBACK_KEY)
    predict_requests = await channel.declare_queue(
        names.predict_requests, durable=True, arguments={"x-queue-type": "classic"}
    )
    registry_snapshot = await channel.declare_queue(
        names.registry_snapshot, durable=True, arguments={"x-queue-type": "classic"}
    )
    return DeclaredTopology(
        names=names,
        events=events,
        control=control,
        dead_letter=dead_letter,
        predict_requests=predict_requests,
        metrics_events=metrics_events,
        dead_letter_queue=dead_letter_queue,
        registry_snapshot=registry_snapshot,
    )


async def delete_topology(channel: AbstractChannel, names: Topology) -> None:
    """Remove every queue and exchange of a namespace (used by tests to clean up)."""
    for queue in names.queue_names() + names.service_queue_names():
        await channel.queue_delete(queue)
    for exchange in names.exchange_names():
        await channel.exchange_delete(exchange)
