"""Ingress's link to RabbitMQ: one robust connection (``infra.amqp.connect``) wired to the
batcher, the event publisher and the registry.

aio-pika's robust connection reconnects by itself and restores the channels, the declared topology
and the control-event consumer; the RPC client restores its reply consumer. When the connection
drops, every in-flight predict batch fails at once (503) instead of waiting for its deadline, new
predictions answer 503 and request events wait in their buffer; once it is back, the link checks
that predictors consume and resyncs the registry before calling itself connected again.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from infra import amqp
from infra.topology import (
    FEEDBACK_KEY,
    REQUEST_EVENTS_KEY,
    DeclaredTopology,
    Topology,
    declare_topology,
)
from ingress.batcher import MicroBatcher
from ingress.events import EventPublisher
from ingress.metrics import IngressMetrics
from ingress.peers import PeerLink
from ingress.ratelimit import RateLimiter
from ingress.registry import Registry
from ingress.registry_client import RegistryClient, VersionReadyListener
from ingress.settings import IngressSettings

log = logging.getLogger(__name__)


class BrokerLink:
    """Keeps one robust broker connection and wires it to the batcher, events and registry."""

    def __init__(
        self,
        settings: IngressSettings,
        batcher: MicroBatcher,
        events: EventPublisher,
        registry: Registry,
        metrics: IngressMetrics,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self.peers: PeerLink | None = None
        """Heartbeats with the other ingress replicas (when the limiter splits limits)."""
        self._batcher = batcher
        self._events = events
        self._registry = registry
        self._metrics = metrics
        self._names = Topology(settings.namespace)
        self._topology: DeclaredTopology | None = None
        self._connection: AbstractRobustConnection | None = None
        self._predict_queue: AbstractQueue | None = None
        self._registry_client: RegistryClient | None = None
        self.rpc: amqp.RpcClient | None = None
        self.connected = asyncio.Event()
        self.sessions = 0
        """How many times the link became connected (1 at start, +1 per reconnect)."""
        events.attach(self._publish_events)

    async def _publish_events(self, batch_id: str, body: bytes) -> None:
        topology = self._topology
        if topology is None or not self.connected.is_set():
            raise amqp.BrokerUnavailable("no broker connection")
        await amqp.publish(topology.events, body, REQUEST_EVENTS_KEY, message_id=batch_id)

    async def publish_feedback(self, batch_id: str, body: bytes) -> None:
        """One encoded ``FeedbackBatch`` on the events exchange, confirmed (else raises)."""
        topology = self._topology
        if topology is None or not self.connected.is_set():
            raise amqp.BrokerUnavailable("no broker connection")
        await amqp.publish(topology.events, body, FEEDBACK_KEY, message_id=batch_id)

    async def run(self) -> None:
        """Connect (waiting for the broker if it is away), then serve until cancelled."""
        settings = self._settings
        connection = await self._open_session()
        try:
            while True:
                await asyncio.sleep(settings.ingress_consumer_check_s)
                if not self.connected.is_set():
                    continue
                try:
                    await self._check_consumers()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("cannot check predictor consumers: %s", exc)
        finally:
            self._on_close(None)
            await self._close(connection)

    async def _open_session(self) -> AbstractRobustConnection:
        """A connection with its channels, topology and consumers set up. A setup the broker does
        not finish in ``ingress_broker_setup_timeout_s`` (a declare or bind left unanswered) drops
        that connection and starts again on a new one, backing off up to 10 s."""
        settings = self._settings
        timeout_s = settings.ingress_broker_setup_timeout_s
        pause_s = 1.0
        while True:
            connection = self._connection = await amqp.connect(
                settings.rabbitmq_url,
                settings.ingress_id,
                on_close=self._on_close,
                on_reconnect=self._on_reconnect,
                wait=True,
            )
            try:
                await asyncio.wait_for(self._set_up(connection), timeout_s)
                return connection
            except asyncio.CancelledError:
                await self._close(connection)
                raise
            except Exception as exc:
                reason = (
                    f"did not finish in {timeout_s:g}s"
                    if isinstance(exc, TimeoutError)
                    else f"failed ({exc!r})"
                )
                log.warning(
                    "broker session setup %s; opening a new connection in %.0fs", reason, pause_s
                )
            await self._close(connection)
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, 10.0)

    async def _set_up(self, connection: AbstractRobustConnection) -> None:
        settings = self._settings
        events_channel = await connection.channel(publisher_confirms=True)
        topology = await declare_topology(events_channel, self._names)
        rpc = amqp.RpcClient(await connection.channel(publisher_confirms=False))
        await rpc.start()
        check_channel = await connection.channel(publisher_confirms=False)
        predict_queue = await check_channel.get_queue(self._names.predict_requests, ensure=False)
        registry_client = RegistryClient(
            self._registry,
            rpc,
            await connection.channel(publisher_confirms=False),
            topology,
            settings.ingress_id,
            settings.ingress_registry_resync_s,
            settings.ingress_registry_timeout_s,
        )
        self._registry_client = registry_client  # stopped by _close if the setup goes no further
        limiter = self._limiter
        if limiter is not None and limiter.shares is not None:
            # Before the registry snapshot: peers answer the hello while it is on its way.
            peers = PeerLink(
                limiter.shares,
                limiter,
                await connection.channel(publisher_confirms=False),
                topology,
                settings.ingress_peer_heartbeat_s,
                self.connected.is_set,
            )
            self.peers = peers  # stopped (goodbye) by _close
            self._metrics.bind(self._metrics.heartbeats_sent, lambda: float(peers.sent))
            await peers.start()
        # Predictors' ready reports, followed before the control events they answer.
        await VersionReadyListener(
            self._registry,
            await connection.channel(publisher_confirms=False),
            topology,
            settings.ingress_id,
        ).start()
        await registry_client.start()
        # Set up in full: only now does the link use these (a half-done setup is dropped whole).
        self.rpc = rpc
        self._metrics.bind(self._metrics.rpc_failed_on_close, lambda: rpc.failed_on_close)
        self._metrics.bind(self._metrics.rpc_late_replies, lambda: rpc.late_replies)
        self._predict_queue = predict_queue

        async def send_batch(
            batch_id: str, body: bytes, expiration_s: float, headers: dict[str, str]
        ) -> None:
            await rpc.send(self._names.predict_requests, body, batch_id, expiration_s, headers)

        self._batcher.attach(send_batch, rpc.expect, rpc.forget)
        self._topology = topology
        await self._on_reconnect()

    async def _close(self, connection: AbstractRobustConnection) -> None:
        if self.peers is not None:
            with suppress(Exception):
                await asyncio.wait_for(self.peers.stop(), 2.0)
        if self._registry_client is not None:
            with suppress(Exception):
                await asyncio.wait_for(self._registry_client.stop(), 1.0)
        with suppress(Exception):
            await asyncio.wait_for(connection.close(), 2.0)

    def _on_close(self, exc: BaseException | None) -> None:
        """The connection dropped (or we stop): no new batches, in-flight ones fail now."""
        self.connected.clear()
        self._batcher.predictors_online = False
        if self.rpc is not None:
            self.rpc.fail_pending(amqp.RpcChannelClosed(f"the broker connection closed ({exc!r})"))

    async def _on_reconnect(self) -> None:
        """Connected (first time or again): predictors consuming? registry fresh? then ready."""
        try:
            await self._check_consumers()
        except Exception as exc:
            log.warning("cannot check predictor consumers: %s", exc)
        if self._registry_client is not None:
            self._registry_client.resync_now()
        self.sessions += 1
        self.connected.set()

    async def _check_consumers(self) -> None:
        assert self._predict_queue is not None
        result = await asyncio.wait_for(self._predict_queue.declare(), 2.0)
        count = result.consumer_count or 0
        self._batcher.predictors_online = count > 0
        self._registry.predictors_online = count
        self._metrics.predictors_online.set(count)
