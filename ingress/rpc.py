"""RPC over RabbitMQ's direct reply-to: publish with a correlation id, get the reply by callback."""

from __future__ import annotations

import logging
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

log = logging.getLogger(__name__)

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"

ReplyCallback = Callable[[bytes], None]


class RpcClient:
    """Sends requests on one channel and routes replies (no ack needed) to waiting callbacks."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self._waiting: dict[str, ReplyCallback] = {}
        self.late_replies = 0

    async def start(self) -> None:
        queue = await self._channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await queue.consume(self._on_reply, no_ack=True)

    def expect(self, correlation_id: str, callback: ReplyCallback) -> None:
        self._waiting[correlation_id] = callback

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    async def publish(
        self, routing_key: str, body: bytes, correlation_id: str, expiration_s: float | None
    ) -> None:
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                correlation_id=correlation_id,
                reply_to=DIRECT_REPLY_TO,
                expiration=max(0.001, expiration_s) if expiration_s is not None else None,
            ),
            routing_key=routing_key,
            mandatory=False,
        )

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        callback = self._waiting.pop(message.correlation_id or "", None)
        if callback is None:
            self.late_replies += 1
            return
        try:
            callback(message.body)
        except Exception:
            log.exception("reply %s could not be handled", message.correlation_id)
