"""Ingress's link to RabbitMQ: one connection at a time, rebuilt whenever the broker drops it.

Each session declares the topology, opens the RPC reply consumer, subscribes to control events,
asks for a registry snapshot and checks that predictors consume, then waits until the connection
closes. Between sessions, predictions answer 503 at once and request events wait in their buffer;
the registry keeps what it knew and resyncs on the next session.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection

from infra.topology import REQUEST_EVENTS_KEY, DeclaredTopology, Topology, declare_topology
from ingress.batcher import MicroBatcher
from ingress.events import EventPublisher
from ingress.metrics import IngressMetrics
from ingress.registry import Registry
from ingress.registry_client import RegistryClient
from ingress.rpc import RpcClient
from ingress.settings import IngressSettings

log = logging.getLogger(__name__)

JSON = "application/json"


class BrokerUnavailable(ConnectionError):
    """No broker session right now."""


class BrokerLink:
    """Keeps one broker session alive and wires it to the batcher, events and registry."""

    def __init__(
        self,
        settings: IngressSettings,
        batcher: MicroBatcher,
        events: EventPublisher,
        registry: Registry,
        metrics: IngressMetrics,
    ) -> None:
        self._settings = settings
        self._batcher = batcher
        self._events = events
        self._registry = registry
        self._metrics = metrics
        self._names = Topology(settings.namespace)
        self._topology: DeclaredTopology | None = None
        self.connected = asyncio.Event()
        self.sessions = 0
        events.attach(self._publish_events)

    async def _publish_events(self, batch_id: str, body: bytes) -> None:
        topology = self._topology
        if topology is None:
            raise BrokerUnavailable("no broker connection")
        await topology.events.publish(
            aio_pika.Message(
                body,
                content_type=JSON,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=batch_id,
            ),
            routing_key=REQUEST_EVENTS_KEY,
            timeout=5,
        )

    async def run(self) -> None:
        """Connect, serve a session until the connection closes, back off, repeat."""
        backoff = 0.5
        while True:
            try:
                connection = await aio_pika.connect(
                    self._settings.rabbitmq_url,
                    client_properties={"connection_name": self._settings.ingress_id},
                    timeout=10,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broker unreachable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                continue
            backoff = 0.5
            try:
                await self._session(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broker session ended: %r", exc)
            finally:
                self._detach()
                with suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2.0)
            await asyncio.sleep(backoff)

    def _detach(self) -> None:
        self.connected.clear()
        self._topology = None
        self._batcher.predictors_online = False

    async def _session(self, connection: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def on_close(*_: Any) -> None:
            if not closed.done():
                closed.set_result(None)

        connection.close_callbacks.add(on_close)
        events_channel = await connection.channel(publisher_confirms=True)
        topology = await declare_topology(events_channel, self._names)
        rpc = RpcClient(await connection.channel(publisher_confirms=False))
        await rpc.start()

        async def send_batch(batch_id: str, body: bytes, expiration_s: float) -> None:
            await rpc.publish(self._names.predict_requests, body, batch_id, expiration_s)

        check_channel = await connection.channel(publisher_confirms=False)
        predict_queue = await check_channel.get_queue(self._names.predict_requests, ensure=False)

        async def check_consumers() -> None:
            result = await asyncio.wait_for(predict_queue.declare(), 2.0)
            count = result.consumer_count or 0
            self._batcher.predictors_online = count > 0
            self._metrics.predictors_online.set(count)

        async def consumer_loop() -> None:
            while True:
                await asyncio.sleep(self._settings.ingress_consumer_check_s)
                try:
                    await check_consumers()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("cannot check predictor consumers: %s", exc)

        registry_client = RegistryClient(
            self._registry,
            rpc,
            await connection.channel(publisher_confirms=False),
            topology,
            self._settings.ingress_id,
            self._settings.ingress_registry_resync_s,
            self._settings.ingress_registry_timeout_s,
        )
        await registry_client.start()
        self._batcher.attach(send_batch, rpc.expect, rpc.forget)
        await check_consumers()
        self._topology = topology
        self.sessions += 1
        self.connected.set()
        if self.sessions > 1:
            log.info("broker connection restored (session %d)", self.sessions)
        checker = asyncio.create_task(consumer_loop())
        try:
            await closed
        finally:
            checker.cancel()
            await asyncio.wait([checker], timeout=1.0)
            with suppress(Exception):
                await asyncio.wait_for(registry_client.stop(), 1.0)
