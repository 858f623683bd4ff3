"""Delivers alert transitions to their owner's endpoints through RabbitMQ (issue 12).

- ``<ns>.alerts.notify`` (durable, bound to ``<ns>.events`` with ``ALERT_TRANSITION_KEY``): each
  transition is fanned out into one delivery row per matching endpoint of the API's owner, and
  one job per delivery on ``<ns>.alerts.deliveries``. Only firing and resolved transitions notify,
  and a silenced one (``silenced: true``) does not.
- ``<ns>.alerts.deliveries``: one attempt per job. A failure (non-2xx, timeout, connection error,
  refused destination) is retried after ``base * 2**(attempt-1)`` seconds through the retry queue
  of that delay (``<ns>.alerts.retry.<ms>``, durable: a message TTL, then dead-lettered back to
  ``deliveries``; it deletes itself when idle), so a restart loses no retry; after
  ``max_attempts`` the delivery is logged as failed and its job goes to ``<ns>.alerts.dead``.

Every queue is shared by the management-api processes of the namespace: each message goes to one
consumer, so a transition is delivered once (at least once across a crash: receivers dedupe on
``X-Modelgate-Event``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aiohttp import web
from pydantic import ValidationError

from infra import amqp
from infra.topology import Topology
from management_api.db import session_factory
from management_api.keys import AMQP, ENGINE, SETTINGS
from management_api.webhooks import NOTIFIED_STATES, WEBHOOKS, Webhooks
from schemas.alerts import ALERT_TRANSITION_KEY, AlertTransition

log = logging.getLogger(__name__)

REQUEUE_PAUSE_S = 1.0
RETRY_QUEUE_IDLE_MS = 600_000
"""A retry queue unused this long after its delay deletes itself."""
"""Pause before a message whose handling failed unexpectedly goes back to its queue."""


def notify_queue(namespace: str) -> str:
    return Topology(namespace).alerts_notify


def deliveries_queue(namespace: str) -> str:
    return Topology(namespace).alerts_deliveries


def dead_queue(namespace: str) -> str:
    return Topology(namespace).alerts_dead


def retry_queue(namespace: str, delay_ms: int) -> str:
    return f"{namespace}.alerts.retry.{delay_ms}"


def retry_delays_ms(base_s: float, max_attempts: int) -> list[int]:
    """The wait before attempt 2, 3, … ``max_attempts``: base, 2 base, 4 base…"""
    return [max(1, round(base_s * 1000 * 2**i)) for i in range(max_attempts - 1)]


def queue_names(namespace: str, base_s: float, max_attempts: int) -> list[str]:
    """Every queue the notifier declares (tests delete them)."""
    return [
        notify_queue(namespace),
        deliveries_queue(namespace),
        dead_queue(namespace),
        *(retry_queue(namespace, ms) for ms in retry_delays_ms(base_s, max_attempts)),
    ]


class Notifier:
    """Consumes transitions and delivery jobs on one channel of the process's connection."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        namespace: str,
        webhooks: Webhooks,
        *,
        max_attempts: int,
        retry_base_s: float,
        prefetch: int = 16,
    ) -> None:
        self._connection = connection
        self._ns = namespace
        self._webhooks = webhooks
        self._max_attempts = max_attempts
        self._delays = retry_delays_ms(retry_base_s, max_attempts)
        self._prefetch = prefetch
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._prefetch)
        events = await channel.declare_exchange(
            Topology(self._ns).events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        quorum = {"x-queue-type": "quorum"}
        notify = await channel.declare_queue(notify_queue(self._ns), durable=True, arguments=quorum)
        await notify.bind(events, routing_key=ALERT_TRANSITION_KEY)
        deliveries = await channel.declare_queue(
            deliveries_queue(self._ns), durable=True, arguments=quorum
        )
        await channel.declare_queue(dead_queue(self._ns), durable=True, arguments=quorum)
        self._channel = channel
        await notify.consume(self._on_transition)
        await deliveries.consume(self._on_delivery)
        log.info("notifier consuming %s and %s", notify.name, deliveries.name)

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _declare_retry(self, delay_ms: int) -> None:
        """The retry queue of one delay, declared at each use: its messages wait ``delay_ms``
        (message TTL) then go back to ``deliveries`` (dead-lettering); unused for 10 minutes
        past its delay it deletes itself (``x-expires``), so a namespace keeps no idle ones."""
        assert self._channel is not None
        await self._channel.declare_queue(
            retry_queue(self._ns, delay_ms),
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-message-ttl": delay_ms,
                "x-expires": delay_ms + RETRY_QUEUE_IDLE_MS,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": deliveries_queue(self._ns),
            },
        )

    async def _send(self, queue: str, body: dict[str, Any], message_id: str) -> None:
        assert self._channel is not None
        await amqp.publish(
            self._channel.default_exchange, orjson.dumps(body), queue, message_id=message_id
        )

    async def _on_transition(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True, ignore_processed=True):
            try:
                raw = orjson.loads(message.body)
                transition = AlertTransition.model_validate(raw)
            except (orjson.JSONDecodeError, ValidationError) as exc:
                log.error("dropped an unreadable alert transition: %s", str(exc)[:300])
                await message.reject(requeue=False)
                return
            silenced = bool(raw.get("silenced")) or bool(getattr(transition, "silenced", False))
            if silenced or transition.to_state not in NOTIFIED_STATES:
                await message.ack()
                return
            try:
                for delivery_id in await self._webhooks.fan_out(transition):
                    await self._send(
                        deliveries_queue(self._ns), {"delivery_id": delivery_id}, delivery_id
                    )
            except Exception:
                log.exception("transition %s not fanned out; retried", transition.transition_id)
                await asyncio.sleep(REQUEUE_PAUSE_S)  # no hot loop while the DB or broker is away
                await message.nack(requeue=True)
                return
            await message.ack()

    async def _on_delivery(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True, ignore_processed=True):
            try:
                delivery_id = str(orjson.loads(message.body)["delivery_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                log.error("dropped an unreadable delivery job: %r", exc)
                await message.reject(requeue=False)
                return
            try:
                outcome = await self._webhooks.attempt(delivery_id, self._max_attempts)
            except Exception:
                log.exception("delivery %s not attempted; retried", delivery_id)
                await asyncio.sleep(REQUEUE_PAUSE_S)
                await message.nack(requeue=True)
                return
            if outcome is not None:
                status, attempts = outcome
                if status == "retrying":
                    delay = self._delays[min(attempts, len(self._delays)) - 1]
                    await self._declare_retry(delay)
                    await self._send(
                        retry_queue(self._ns, delay), {"delivery_id": delivery_id}, delivery_id
                    )
                elif status == "failed":
                    log.warning("delivery %s failed after %d attempts", delivery_id, attempts)
                    await self._send(
                        dead_queue(self._ns),
                        {"delivery_id": delivery_id, "attempts": attempts},
                        delivery_id,
                    )
            await message.ack()


async def notifier_context(app: web.Application) -> AsyncIterator[None]:
    """The endpoints' service on the app (``WEBHOOKS``) and the notifier on the broker."""
    settings = app[SETTINGS]
    webhooks = Webhooks(session_factory(app[ENGINE]), settings)
    app[WEBHOOKS] = webhooks
    notifier = Notifier(
        app[AMQP],
        settings.namespace,
        webhooks,
        max_attempts=settings.management_webhook_max_attempts,
        retry_base_s=settings.management_webhook_retry_base_s,
    )
    await notifier.start()
    yield
    await notifier.stop()
    await webhooks.close()
