"""The metrics consumer: request events and worker samples from the broker into ClickHouse.

Messages are decoded as they arrive and buffered; a flush task inserts the buffer as columnar
batches and acks the broker (``multiple=True``) only after ClickHouse accepted every row. The
broker's prefetch bounds the buffer, hence memory. Undecodable messages are republished to the
dead-letter exchange with the reason in a header, then acked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack, suppress
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra import amqp
from infra.clickhouse import create_async_client
from infra.topology import DeclaredTopology, Topology, declare_topology
from metrics_consumer.decoding import DecodeError, EventBatch, FeedbackRows, decode
from metrics_consumer.metrics import ConsumerMetrics
from metrics_consumer.settings import ConsumerSettings
from metrics_consumer.store import EventStore
from metrics_consumer.writer import BatchWriter, Pending

log = logging.getLogger(__name__)

DEAD_REASON_HEADER = "x-modelgate-dead-reason"
DEAD_ROUTING_KEY_HEADER = "x-modelgate-routing-key"
DEAD_QUEUE_HEADER = "x-modelgate-queue"


class Delivery:
    """What acking a message needs, without keeping its body alive."""

    __slots__ = ("channel", "delivery_tag")

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self.channel = message.channel
        self.delivery_tag = message.delivery_tag or 0

    async def ack(self, multiple: bool = False) -> None:
        await self.channel.basic_ack(delivery_tag=self.delivery_tag, multiple=multiple)


class Buffer:
    """Decoded messages in delivery order, waiting for the next flush."""

    def __init__(self) -> None:
        self.items: list[Pending] = []
        self.rows = 0
        self.oldest_at: float | None = None

    def __len__(self) -> int:
        return len(self.items)

    def add(self, pending: Pending, now: float) -> None:
        if not self.items:
            self.oldest_at = now
        self.items.append(pending)
        self.rows += pending.rows

    def take(self) -> list[Pending]:
        items, self.items, self.rows, self.oldest_at = self.items, [], 0, None
        return items


class Worker:
    """One consumer process: AMQP in, ClickHouse out, ``/metrics`` and ``/health`` beside."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self.names = Topology(settings.namespace)
        self.metrics = ConsumerMetrics()
        self.buffer = Buffer()
        self.writer: BatchWriter | None = None
        self.topology: DeclaredTopology | None = None
        self.metrics_port: int | None = None
        self._wake = asyncio.Event()
        self._started = time.monotonic()
        self._consuming = False

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then flush what is buffered and return."""
        async with AsyncExitStack() as stack:
            await self._start_http(stack)
            client = await self._connect_clickhouse(stop)
            if client is None:
                return
            stack.push_async_callback(client.close)
            self.writer = BatchWriter(
                EventStore(client, self.settings.clickhouse_database),
                self.metrics,
                cache_size=self.settings.consumer_dedup_cache_size,
                warmup_s=self.settings.consumer_dedup_warmup_s,
                retry_initial_s=self.settings.consumer_retry_initial_s,
                retry_max_s=self.settings.consumer_retry_max_s,
                settle_s=self.settings.consumer_redelivery_settle_s,
            )
            connection: AbstractRobustConnection = await amqp.connect(
                self.settings.rabbitmq_url, self.settings.consumer_id
            )
            stack.push_async_callback(connection.close)
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=self.settings.consumer_prefetch)
            self.topology = await declare_topology(channel, self.names)
            flusher = asyncio.create_task(self._flush_loop(), name="flush")
            consumer = asyncio.create_task(self._consume(), name="consume")
            peers = asyncio.create_task(
                self._watch_peers(await connection.channel(publisher_confirms=False)),
                name="peers",
            )
            stopper = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {flusher, consumer, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task is not stopper:
                        task.result()  # a crashed loop ends the process loudly
            finally:
                stopper.cancel()
                peers.cancel()
                consumer.cancel()
                with suppress(asyncio.CancelledError):
                    await consumer
                flusher.cancel()
                with suppress(asyncio.CancelledError):
                    await flusher
            # Graceful stop: store and ack what is buffered (bounded by the retry policy).
            if len(self.buffer):
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._flush(), timeout=30)

    async def _connect_clickhouse(self, stop: asyncio.Event) -> Any:
        delay = self.settings.consumer_retry_initial_s
        while not stop.is_set():
            try:
                return await create_async_client(self.settings.clickhouse_url)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ClickHouse not reachable, retrying in %.1fs: %s", delay, exc)
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, self.settings.consumer_retry_max_s)
        return None

    async def _start_http(self, stack: AsyncExitStack) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_view)
        app.router.add_get("/health", self._health_view)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(
            runner, self.settings.consumer_metrics_host, self.settings.consumer_metrics_port
        )
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.metrics_port = sockets[0].getsockname()[1] if sockets else None
        log.info(
            "metrics on http://%s:%s/metrics",
            self.settings.consumer_metrics_host,
            self.metrics_port,
        )

    # -- consuming -------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self.topology is not None
        async with self.topology.metrics_events.iterator() as messages:
            self._consuming = True
            log.info("consuming %s", self.names.metrics_events)
            async for message in messages:
                await self.on_message(message)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Decode and buffer one message, or dead-letter it; never raises for a bad body."""
        self.metrics.messages_received.inc()
        try:
            decoded = decode(message.routing_key or "", message.body)
        except DecodeError as exc:
            await self.dead_letter(message, str(exc))
            return
        delivery = Delivery(message)
        if isinstance(decoded, EventBatch):
            pending = Pending(
                delivery=delivery,
                batch_id=decoded.batch_id,  # the stored batch_id column the duplicate check reads
                events=decoded.rows,
                # A batch replayed from an ingress spool may have been stored before this
                # consumer's start (outside its recent-batch memory): look its events up.
                redelivered=bool(message.redelivered) or decoded.replayed,
                received_at=time.monotonic(),
            )
        elif isinstance(decoded, FeedbackRows):
            pending = Pending(
                delivery=delivery,
                batch_id=decoded.batch_id,
                feedback=decoded,
                redelivered=bool(message.redelivered),
                received_at=time.monotonic(),
            )
        else:
            pending = Pending(
                delivery=delivery,
                batch_id=message.message_id or f"sample:{decoded.worker_id}:{decoded.ts}",
                sample=decoded,
                redelivered=bool(message.redelivered),
                received_at=time.monotonic(),
            )
        self.buffer.add(pending, time.monotonic())
        self.metrics.buffered_rows.set(self.buffer.rows)
        if self._due():
            self._wake.set()

    async def dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        assert self.topology is not None
        log.warning("dead-lettering message %s: %s", message.message_id, reason)
        headers: dict[str, Any] = dict(message.headers or {})
        headers[DEAD_REASON_HEADER] = reason
        headers[DEAD_ROUTING_KEY_HEADER] = message.routing_key or ""
        headers[DEAD_QUEUE_HEADER] = self.names.metrics_events
        try:
            await amqp.publish(
                self.topology.dead_letter,
                amqp.message(
                    message.body,
                    headers=headers,
                    message_id=message.message_id,
                    content_type=message.content_type,
                ),
                message.routing_key or "",
            )
            await message.ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The queue's own dead-letter exchange still takes it (without our reason header).
            log.exception("publishing to the dead-letter exchange failed; rejecting instead")
            await message.reject(requeue=False)
        self.metrics.dead_lettered.inc()

    async def _watch_peers(self, channel: Any) -> None:
        """Note once other consumers share the events queue: from then on the writer looks up
        every batch, since a copy may come here of a batch another consumer stored."""
        assert self.writer is not None
        while not self.writer.competing:
            try:
                declared = await channel.declare_queue(
                    self.names.metrics_events, passive=True, robust=False
                )
                consumers = declared.declaration_result.consumer_count or 0
                self.metrics.queue_consumers.set(consumers)
                if consumers > 1:
                    log.info(
                        "%d consumers share the events queue: every batch is checked for "
                        "duplicates from now on",
                        consumers,
                    )
                    self.writer.competing = True
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot count the consumers of the events queue: %s", exc)
            await asyncio.sleep(self.settings.consumer_peer_check_s)

    # -- flushing --------------------------------------------------------------------------

    def _due(self) -> bool:
        s = self.settings
        if not len(self.buffer):
            return False
        if self.buffer.rows >= s.consumer_batch_rows:
            return True
        if len(self.buffer) >= max(1, s.consumer_prefetch // 2):
            return True
        oldest = self.buffer.oldest_at
        return oldest is not None and time.monotonic() - oldest >= s.consumer_flush_interval_s

    async def _flush_loop(self) -> None:
        interval = self.settings.consumer_flush_interval_s
        while True:
            oldest = self.buffer.oldest_at
            timeout = interval if oldest is None else max(0.0, oldest + interval - time.monotonic())
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()
            if self._due():
                await self._flush()

    async def _flush(self) -> None:
        assert self.writer is not None
        batch = self.buffer.take()
        self.metrics.buffered_rows.set(self.buffer.rows)
        if not batch:
            return
        outcome = await self.writer.write(batch)
        log.debug(
            "stored %d events, %d samples (%d duplicates dropped) from %d messages",
            outcome.events,
            outcome.samples,
            outcome.duplicates,
            len(batch),
        )
        try:
            await batch[-1].delivery.ack(multiple=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The channel was lost: the broker redelivers these, and the writer drops the copies.
            log.warning("ack of %d messages failed (they will be redelivered): %s", len(batch), exc)

    # -- HTTP ------------------------------------------------------------------------------

    async def _metrics_view(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health_view(self, request: web.Request) -> web.Response:
        writer = self.writer
        clickhouse_ok = writer is not None and writer.healthy
        healthy = clickhouse_ok and self._consuming
        return web.json_response(
            {
                "status": "ok" if healthy else "degraded",
                "service": "metrics-consumer",
                "instance_id": self.settings.consumer_id,
                "consuming": self._consuming,
                "clickhouse": "ok" if clickhouse_ok else "unavailable",
                "last_error": writer.last_error if writer else "",
                "buffered_rows": self.buffer.rows,
                "uptime_s": round(time.monotonic() - self._started, 1),
            },
            status=200 if healthy else 503,
        )
