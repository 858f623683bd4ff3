"""Publishes ``ApiChanged`` events in order, retrying what the broker could not take.

A change is committed to the metadata DB before it is announced. If the broker is away at that
moment, dropping the announcement would leave ingress serving a rotated key or a deactivated API
until its next registry resync; instead the change waits here, in order, and is retried with
backoff until the broker takes it. Later changes queue behind it so ingress sees them in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress

from schemas import ApiChanged

log = logging.getLogger(__name__)

Publish = Callable[[ApiChanged], Awaitable[None]]


class ChangeAnnouncer:
    """In-order, retried publication of control events; ``announce`` never raises."""

    def __init__(
        self,
        publish: Publish,
        *,
        max_pending: int = 10_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self._publish = publish
        self._pending: deque[ApiChanged] = deque()
        self._max_pending = max_pending
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def announce(self, change: ApiChanged) -> None:
        if self._pending:
            self._enqueue(change)
            return
        try:
            await self._publish(change)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not publish ApiChanged(%s) for %s (%r); retrying in the background",
                change.kind.value,
                change.api_id,
                exc,
            )
            self._enqueue(change)

    def _enqueue(self, change: ApiChanged) -> None:
        if len(self._pending) >= self._max_pending:
            dropped = self._pending.popleft()
            log.error(
                "more than %d control events unpublished; dropped the oldest (%s %s), "
                "ingress converges at its next registry resync",
                self._max_pending,
                dropped.kind.value,
                dropped.api_id,
            )
        self._pending.append(change)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry_loop())

    async def _retry_loop(self) -> None:
        delay = self._retry_initial_s
        while self._pending:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)
            # Publish what is pending back to back until the broker refuses one again.
            while self._pending:
                try:
                    await self._publish(self._pending[0])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "control event still unpublished (%r); next try in %.1fs", exc, delay
                    )
                    break
                self._pending.popleft()
                delay = self._retry_initial_s
        log.info("pending control events published")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._pending:
            log.error(
                "%d control events unpublished at shutdown; ingress converges at its next "
                "registry resync",
                len(self._pending),
            )
