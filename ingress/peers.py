"""Ingress replicas' heartbeats: who is alive and what each demands per key, for the rate-limit
shares of ``ingress.ratelimit`` (the design is told there).

Heartbeats travel on the ``events`` topic exchange under ``ingress.peer`` (like predictors'
``version.ready``: only ingress binds it, each replica with an exclusive queue of its own), not
on ``control``: every service that follows the registry consumes ``control`` and would have to
skip a message a second per replica; they are neither persistent nor confirmed, and expire in
the broker after a few intervals (an old heartbeat is worth nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import suppress

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from infra.topology import INGRESS_PEER_KEY, DeclaredTopology
from ingress.ratelimit import RateLimiter, ShareBook
from schemas.messages import IngressHeartbeat, MessageError, decode, encode

log = logging.getLogger(__name__)


class PeerLink:
    """Announces this replica every ``interval_s`` and feeds peers' heartbeats to its
    ``ShareBook``; says hello at start (peers answer at once) and goodbye at a clean stop."""

    def __init__(
        self,
        book: ShareBook,
        limiter: RateLimiter,
        channel: AbstractChannel,
        topology: DeclaredTopology,
        interval_s: float,
        connected: Callable[[], bool],
    ) -> None:
        self.book = book
        self._limiter = limiter
        self._channel = channel
        self._topology = topology
        self._interval_s = interval_s
        self._connected = connected
        self._boot = uuid.uuid4().hex[:12]
        self._seq = 0
        self._exchange: AbstractExchange | None = None
        self._task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.settled = asyncio.Event()
        """Set once this replica heard its own hello back: its peers have had it (and answer)."""
        self.sent = 0
        self.heard = 0

    async def start(self) -> None:
        names = self._topology.names
        queue = await self._channel.declare_queue(
            f"{names.namespace}.peers.{self.book.replica_id}.{uuid.uuid4().hex[:8]}",
            exclusive=True,
            auto_delete=True,
        )
        await queue.bind(self._topology.events, routing_key=INGRESS_PEER_KEY)
        await queue.consume(self._on_heartbeat, no_ack=True)
        self._exchange = await self._channel.get_exchange(names.events_exchange, ensure=False)
        await self._send(hello=True)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop announcing and say goodbye (best effort: peers expire this replica otherwise)."""
        for task in (self._task, self._release_task):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        self._task = self._release_task = None
        with suppress(Exception):
            await asyncio.wait_for(self._send(leaving=True), 1.0)

    def heartbeat(
        self, hello: bool = False, leaving: bool = False, release: bool = False
    ) -> IngressHeartbeat:
        """The next heartbeat: this replica's demand per key and the tokens it released
        (``release``: only the tokens, between two heartbeats; the demand is left as it was)."""
        if leaving:
            self._limiter.release_all()
        else:
            self._limiter.settle()
        report = self.book.released_only() if release else self.book.report()
        self._seq += 1
        return IngressHeartbeat(
            replica_id=self.book.replica_id,
            boot=self._boot,
            seq=self._seq,
            interval_s=self._interval_s,
            hello=hello,
            leaving=leaving,
            demand=report.demand,
            limits=report.limits,
            released=report.released,
            returned=report.returned,
        )

    async def _send(self, hello: bool = False, leaving: bool = False) -> None:
        await self._publish(self.heartbeat(hello, leaving))
        self.sent += 1

    async def _publish(self, beat: IngressHeartbeat) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            encode(beat),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
            expiration=max(1.0, 3 * self._interval_s),
        )
        await asyncio.wait_for(
            self._exchange.publish(message, routing_key=INGRESS_PEER_KEY), self._interval_s * 2
        )

    async def _release_soon(self) -> None:
        """Right after the others' heartbeats of a round (a little later, so one message says it
        all): bring the buckets to the new shares and send what they gave up now rather than at
        the next heartbeat, so that the tokens are where the demand is while it lasts."""
        await asyncio.sleep(min(0.02, self._interval_s / 10))
        self._release_task = None
        beat = self.heartbeat(release=True)
        if beat.released or beat.returned:
            try:
                await self._publish(beat)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ingress token release not sent: %r", exc)

    async def _run(self) -> None:
        interval = self._interval_s
        while True:
            # On the wall clock's multiples of the interval: every replica announces at the same
            # moment, so all change their shares once per interval, together (staggered
            # announcements would swing a key's shares to whoever spoke last, and back).
            pause = interval - time.time() % interval
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(pause, 0.001))
            self._wake.clear()
            if not self._connected():
                self.book.freeze()
                continue
            self.book.thaw()
            gone = self.book.expire()
            if gone:
                log.warning("ingress replicas %s not heard for a while; their shares return", gone)
            try:
                await self._send()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ingress heartbeat not sent: %r", exc)

    async def _on_heartbeat(self, message: AbstractIncomingMessage) -> None:
        try:
            beat = decode(message.body, IngressHeartbeat)
        except MessageError as exc:
            log.error("undecodable ingress heartbeat ignored: %s", str(exc)[:300])
            return
        self.heard += 1
        if beat.replica_id == self.book.replica_id:
            if beat.boot == self._boot:
                self.book.heard(beat.replica_id, beat.boot, beat.demand, {})
                self.settled.set()
            else:
                log.error(
                    "another ingress process announces itself as %s: give each its own "
                    "MODELGATE_INGRESS_ID (its heartbeats are ignored)",
                    beat.replica_id,
                )
            return
        new = self.book.heard(
            beat.replica_id,
            beat.boot,
            beat.demand,
            beat.released,
            beat.leaving,
            beat.limits,
            beat.returned,
        )
        if beat.leaving:
            log.info("ingress replica %s left; its shares return", beat.replica_id)
        elif new:
            log.info("ingress replica %s joined (%d live)", beat.replica_id, len(self.book.live()))
        if beat.hello:
            self._wake.set()  # answer a newcomer at once rather than at the next interval
        elif self._release_task is None and self._task is not None:
            self._release_task = asyncio.create_task(self._release_soon())
