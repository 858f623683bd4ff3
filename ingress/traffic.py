"""Canary and shadow traffic, decided per request (a request's rows always go together).

An API's record may carry a second version (``ApiRecord.traffic``, kept on ``ApiEntry.traffic``):

- **canary**: ``weight_percent`` of the requests are answered by that version instead of the
  serving one; the answer's ``model_version`` and the request's event name the one that answered.
- **shadow**: ``weight_percent`` of the requests are also sent to that version once the serving
  one answered; the client gets the serving version's answer, never delayed by the shadow, and
  the shadow's answer (or failure) becomes an event of its own (``shadow``, ``shadow_of``).

``TrafficRouter`` draws the decision from a random source a test can seed. ``ShadowCalls`` runs
the mirrored calls as fire-and-forget tasks, ``max_inflight`` at most: a mirror beyond that is
dropped (and counted), never queued, so shadows cannot pile up behind a slow version.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ingress.registry import ApiEntry
from schemas import TrafficMode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes: the version that answers it, and the one it is mirrored to."""

    version_key: str
    canary: bool = False
    """``version_key`` is the API's canary version, not its serving one."""
    shadow_key: str | None = None
    """Also send the request to this version, recording its answer only."""


class TrafficRouter:
    """Picks each request's route from its API's traffic split, one draw per request."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._random = (rng or random.Random()).random

    def route(self, entry: ApiEntry) -> Route:
        split = entry.traffic
        if split is None or self._random() * 100.0 >= split.weight_percent:
            return Route(entry.version_key)
        if split.mode is TrafficMode.CANARY:
            return Route(split.version_key, canary=True)
        return Route(entry.version_key, shadow_key=split.version_key)


class ShadowCalls:
    """Shadow calls in flight, ``max_inflight`` at most; each is a task nobody awaits."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    def start(self, call: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``call()`` in the background; False (and nothing started) when at the cap."""
        if len(self._tasks) >= self.max_inflight:
            self.dropped += 1
            return False
        task = asyncio.get_running_loop().create_task(call())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("shadow call failed", exc_info=task.exception())

    async def stop(self, timeout_s: float) -> None:
        """Let the calls in flight finish (their events recorded) for ``timeout_s``, then cancel."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)
