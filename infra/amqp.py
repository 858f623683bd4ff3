"""The one AMQP module every service uses: connect, confirmed publish, RPC client, RPC reply.

- ``connect``: aio-pika's robust connection (it reconnects by itself and restores channels,
  declared queues and their consumers), with close/reconnect callbacks and one log line each way.
- ``publish``: persistent and confirmed; a nack (``basic.nack``) or a return (mandatory and
  unroutable) raises ``PublishRefused`` instead of passing for delivered.
- ``RpcClient``: calls over RabbitMQ's direct reply-to, one correlation id per call, a deadline per
  call; the moment its channel or connection closes every pending call fails with
  ``RpcChannelClosed`` (as aio-pika's ``patterns/rpc.py`` does with its close callbacks) instead of
  waiting out its deadline; replies nobody waits for any more are counted (``late_replies``).
- ``reply``: how a responder (predictor, registry responder) answers a request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.exceptions import (
    AMQPConnectionError,
    ChannelClosed,
    ChannelInvalidStateError,
    DeliveryError,
)
from pamqp.commands import Basic

log = logging.getLogger(__name__)

JSON = "application/json"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"

CloseCallback = Callable[[BaseException | None], Any]
ReconnectCallback = Callable[[], Any]


class PublishRefused(ConnectionError):
    """The broker did not take a message: it nacked it, or returned it as unroutable."""


class BrokerUnavailable(ConnectionError):
    """No broker connection (or channel) to publish on right now."""


class PublishTimeout(BrokerUnavailable, TimeoutError):
    """The broker did not confirm a publish in time (it may or may not have it)."""


class RpcError(ConnectionError):
    """An RPC call got no reply."""


class RpcChannelClosed(RpcError):
    """The channel (or the connection) carrying the call closed before its reply came."""


class RpcTimeout(RpcError, TimeoutError):
    """No reply within the call's deadline."""


async def connect(
    url: str,
    name: str,
    *,
    on_close: CloseCallback | None = None,
    on_reconnect: ReconnectCallback | None = None,
    reconnect_interval: float = 1.0,
    wait: bool = False,
    timeout: float = 10.0,
) -> AbstractRobustConnection:
    """A robust connection named ``name`` on the broker (``rabbitmqctl list_connections``).

    ``on_close(exc)`` runs when the connection drops, ``on_reconnect()`` once it is back with its
    channels, queues and consumers restored (both may be coroutines). With ``wait`` the first
    connect keeps trying until the broker answers; otherwise it raises at once.
    """
    connection = await aio_pika.connect_robust(
        url,
        client_properties={"connection_name": name},
        reconnect_interval=reconnect_interval,
        fail_fast=not wait,
        timeout=timeout,
    )

    async def closed(_: Any, exc: BaseException | None = None) -> None:
        if connection.close_called or connection.is_closed:  # closed by us: no reconnect
            return
        log.warning(
            "broker connection %s lost (%r); reconnecting every %.1fs",
            name,
            exc,
            reconnect_interval,
        )
        if on_close is not None:
            result = on_close(exc)
            if asyncio.iscoroutine(result):
                await result

    async def reconnected(_: Any) -> None:
        log.info("broker connection %s restored", name)
        if on_reconnect is not None:
            result = on_reconnect()
            if asyncio.iscoroutine(result):
                await result

    connection.close_callbacks.add(closed)
    connection.reconnect_callbacks.add(reconnected)
    log.info("broker connection %s open", name)
    return connection


def message(
    body: bytes,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    headers: dict[str, Any] | None = None,
    persistent: bool = True,
    expiration_s: float | None = None,
    content_type: str | None = JSON,
) -> aio_pika.Message:
    """The one way a message is built (JSON, persistent unless told)."""
    return aio_pika.Message(
        body,
        content_type=content_type,
        message_id=message_id,
        correlation_id=correlation_id,
        reply_to=reply_to,
        headers=headers,
        expiration=max(0.001, expiration_s) if expiration_s is not None else None,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        if persistent
        else aio_pika.DeliveryMode.NOT_PERSISTENT,
    )


async def publish(
    exchange: AbstractExchange,
    body: bytes | aio_pika.Message,
    routing_key: str,
    *,
    message_id: str | None = None,
    headers: dict[str, Any] | None = None,
    mandatory: bool = True,
    timeout: float = 5.0,
) -> None:
    """Publish persistent on a channel with publisher confirms; return once the broker took it.

    Raises ``PublishRefused`` when the broker nacks the message or (``mandatory``) returns it as
    unroutable, ``BrokerUnavailable`` when the connection or channel is away, ``PublishTimeout``
    (a ``BrokerUnavailable``) when no confirm comes within ``timeout`` (the robust channel would
    otherwise wait for the connection to come back).
    """
    msg = (
        body
        if isinstance(body, aio_pika.Message)
        else message(body, message_id=message_id, headers=headers)
    )
    try:
        # A robust channel waits for the connection to come back: bound the whole publish.
        confirmation = await asyncio.wait_for(
            exchange.publish(msg, routing_key=routing_key, mandatory=mandatory, timeout=timeout),
            timeout,
        )
    except DeliveryError as exc:  # nack, or a return on a channel that raises on returns
        raise PublishRefused(
            f"broker refused the message for {exchange.name or '(default)'}/{routing_key}: {exc}"
        ) from exc
    except TimeoutError:
        raise PublishTimeout(
            f"no confirm for {exchange.name or '(default)'}/{routing_key} within {timeout:g} s"
        ) from None
    except (ChannelInvalidStateError, ChannelClosed, AMQPConnectionError) as exc:
        raise BrokerUnavailable(f"cannot publish to the broker now: {exc!r}") from exc
    if confirmation is not None and not isinstance(confirmation, Basic.Ack):
        raise PublishRefused(
            f"broker returned the message for {exchange.name or '(default)'}/{routing_key}"
            " (no queue bound for it)"
        )


async def reply(
    channel: AbstractChannel, request: AbstractIncomingMessage, body: bytes, timeout: float = 5.0
) -> bool:
    """Answer an RPC request on its ``reply_to`` with its correlation id (False: nowhere to)."""
    if not request.reply_to:
        log.warning("request %s without reply_to: no reply sent", request.correlation_id)
        return False
    await asyncio.wait_for(
        channel.default_exchange.publish(
            message(body, correlation_id=request.correlation_id, persistent=False),
            routing_key=request.reply_to,
            mandatory=False,
        ),
        timeout,
    )
    return True


Deliver = Callable[[bytes], None]
Fail = Callable[[BaseException], None]


class RpcClient:
    """Requests over one channel, replies through direct reply-to, routed by correlation id.

    ``call`` awaits one reply with a deadline. ``expect``/``send`` is the callback form for callers
    that keep their own timers (the micro-batcher): ``on_error`` gets ``RpcChannelClosed`` when the
    channel closes. Either way nothing pending outlives the channel it was sent on.
    """

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel
        self._waiting: dict[str, tuple[Deliver, Fail]] = {}
        self._queue: AbstractQueue | None = None
        self._ready = asyncio.Event()
        self.late_replies = 0
        """Replies whose call was over (answered, timed out or failed) when they came."""
        self.failed_on_close = 0
        """Calls failed because the channel closed under them."""

    @property
    def pending(self) -> int:
        return len(self._waiting)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        """Consume the reply pseudo-queue; follow the channel's close and (robust) reopen."""
        self._channel.close_callbacks.add(self._on_close)
        if isinstance(self._channel, AbstractRobustChannel):
            self._channel.reopen_callbacks.add(self._on_reopen)
        await self._consume()

    async def _consume(self) -> None:
        self._queue = await self._channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await self._queue.consume(self._on_reply, no_ack=True)
        self._ready.set()

    async def _on_reopen(self, _: Any) -> None:
        # Direct reply-to is no declared queue: the robust channel does not restore its consumer.
        await self._consume()

    def _on_close(self, _: Any, exc: BaseException | None = None) -> None:
        self._ready.clear()
        self.fail_pending(RpcChannelClosed(f"the broker channel closed ({exc!r})"))

    def fail_pending(self, error: BaseException) -> None:
        """Fail every call still waiting (channel or connection gone)."""
        waiting, self._waiting = self._waiting, {}
        if waiting:
            log.warning("%d pending RPC calls failed: %s", len(waiting), error)
        self.failed_on_close += len(waiting)
        for _, fail in waiting.values():
            try:
                fail(error)
            except Exception:
                log.exception("RPC failure callback failed")

    def expect(self, correlation_id: str, on_reply: Deliver, on_error: Fail) -> None:
        self._waiting[correlation_id] = (on_reply, on_error)

    def forget(self, correlation_id: str) -> None:
        self._waiting.pop(correlation_id, None)

    async def send(
        self,
        routing_key: str,
        body: bytes,
        correlation_id: str,
        expiration_s: float | None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish a request (not persistent: a request outliving its caller is worthless)."""
        if not self._ready.is_set():
            raise RpcChannelClosed("the broker channel is not open")
        await self._channel.default_exchange.publish(
            message(
                body,
                correlation_id=correlation_id,
                reply_to=DIRECT_REPLY_TO,
                persistent=False,
                expiration_s=expiration_s,
                headers=headers or None,
            ),
            routing_key=routing_key,
            mandatory=False,
        )

    async def call(
        self,
        routing_key: str,
        body: bytes,
        *,
        timeout: float,
        correlation_id: str | None = None,
    ) -> bytes:
        """Send a request and return its reply's body.

        Raises ``RpcTimeout`` after ``timeout`` seconds, ``RpcChannelClosed`` as soon as the
        channel closes.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        cid = correlation_id or uuid.uuid4().hex

        def deliver(body: bytes) -> None:
            if not future.done():
                future.set_result(body)

        def fail(exc: BaseException) -> None:
            if not future.done():
                future.set_exception(exc)

        self.expect(cid, deliver, fail)
        try:
            await self.send(routing_key, body, cid, timeout)
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise RpcTimeout(f"no reply from {routing_key} within {timeout:g} s") from None
        finally:
            self.forget(cid)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        entry = self._waiting.pop(message.correlation_id or "", None)
        if entry is None:
            self.late_replies += 1
            return
        try:
            entry[0](message.body)
        except Exception:
            log.exception("reply %s could not be handled", message.correlation_id)
