"""Request events leave in confirmed batches; while the broker is away they wait, bounded.

A batch keeps its id across retries (``message_id``), so a publish that landed but was not
confirmed and is sent again is recognised as a duplicate downstream.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import SCHEMA_VERSION

log = logging.getLogger(__name__)

PublishEvents = Callable[[str, bytes], Awaitable[None]]
"""Publishes one encoded ``RequestEventBatch`` with its batch id; raises when not confirmed."""


class EventPublisher:
    """Buffers request events and flushes them every ``flush_s`` or ``flush_max`` events."""

    def __init__(
        self,
        ingress_id: str,
        flush_s: float = 0.05,
        flush_max: int = 500,
        buffer_max: int = 200_000,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.ingress_id = ingress_id
        self.flush_s = flush_s
        self.flush_max = flush_max
        self.buffer_max = buffer_max
        self.max_backoff_s = max_backoff_s
        self._buffer: deque[dict[str, Any]] = deque()
        self._pending: tuple[str, bytes, int] | None = None
        self._wake = asyncio.Event()
        self._publish: PublishEvents | None = None
        self.published = 0
        self.dropped = 0
        self.failures = 0

    def attach(self, publish: PublishEvents) -> None:
        self._publish = publish

    @property
    def depth(self) -> int:
        """Events not yet confirmed by the broker."""
        return len(self._buffer) + (self._pending[2] if self._pending else 0)

    def record(self, event: dict[str, Any]) -> None:
        """Queue one event (``ts`` as epoch seconds); never blocks the request."""
        if len(self._buffer) >= self.buffer_max:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("event buffer full; %d events dropped so far", self.dropped)
        self._buffer.append(event)
        if len(self._buffer) >= self.flush_max:
            self._wake.set()

    def _next_batch(self) -> tuple[str, bytes, int]:
        count = min(len(self._buffer), self.flush_max)
        events = [self._buffer.popleft() for _ in range(count)]
        for event in events:
            ts = event["ts"]
            if isinstance(ts, float):
                event["ts"] = datetime.fromtimestamp(ts, UTC)
        batch_id = uuid.uuid4().hex
        body = orjson.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "batch_id": batch_id,
                "ingress_id": self.ingress_id,
                "events": events,
            }
        )
        return batch_id, body, count

    async def flush(self) -> bool:
        """Publish everything buffered now; False when the broker refused (events kept)."""
        if self._publish is None:
            return False
        while self._pending is not None or self._buffer:
            if self._pending is None:
                self._pending = self._next_batch()
            batch_id, body, count = self._pending
            try:
                await self._publish(batch_id, body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if self.failures % 20 == 1:
                    log.warning("event batch not confirmed (%s); %d events wait", exc, self.depth)
                return False
            self._pending = None
            self.published += count
        return True

    async def run(self) -> None:
        """Flush forever: on schedule, when a batch is full, with backoff while failing."""
        backoff = self.flush_s
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            if await self.flush():
                backoff = self.flush_s
            else:
                backoff = min(self.max_backoff_s, max(0.1, backoff * 2))

    async def drain(self, timeout_s: float) -> None:
        """Flush what is left before shutdown, trying for at most ``timeout_s``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.depth and loop.time() < end:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self.depth:
            log.error("stopping with %d request events unpublished", self.depth)
