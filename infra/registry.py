"""The registry contract on the broker: snapshot RPC responder and ``ApiChanged`` publishing.

The management API owns the registry; ingress asks for a ``RegistrySnapshot`` at start and on
resync, and follows ``ApiChanged`` events on the ``control`` fanout in between. Tests and the
early demo helper answer snapshots from an in-memory source through the same class.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from infra import amqp
from infra.topology import DeclaredTopology
from schemas import ApiChanged, ApiRecord, RegistrySnapshot
from schemas.messages import encode

log = logging.getLogger(__name__)

RegistrySource = Callable[[], Awaitable[list[ApiRecord]]]


class RegistryResponder:
    """Answers ``registry.snapshot`` RPCs with the records a source returns."""

    def __init__(
        self, channel: AbstractChannel, topology: DeclaredTopology, source: RegistrySource
    ) -> None:
        self._channel = channel
        self._topology = topology
        self._source = source
        self._consumer_tag: str | None = None

    async def start(self) -> None:
        self._consumer_tag = await self._topology.registry_snapshot.consume(self._on_request)

    async def stop(self) -> None:
        if self._consumer_tag is not None:
            with suppress(Exception):
                await self._topology.registry_snapshot.cancel(self._consumer_tag)
            self._consumer_tag = None

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        async with message.process(ignore_processed=True):
            if not message.reply_to:
                log.warning("registry snapshot request without reply_to, dropped")
                return
            try:
                records = await self._source()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("registry source failed; the requester will retry")
                await message.nack(requeue=True)
                return
            await amqp.reply(self._channel, message, encode(RegistrySnapshot(apis=records)))


async def publish_api_changed(topology: DeclaredTopology, change: ApiChanged) -> None:
    """Fan an ``ApiChanged`` out to every ingress (persistent; raises unless the broker confirms).

    Not mandatory: with no ingress running nobody is bound, and no ingress is left to tell.
    """
    await amqp.publish(topology.control, encode(change), "", mandatory=False)
