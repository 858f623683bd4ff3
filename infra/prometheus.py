"""Bounded label values for Prometheus metrics.

A label whose values come from data (``api_id``: one per exported API) would give a process one
series per value for its whole life, and a Prometheus server one time series per value and
process. ``LabelCap`` keeps the first ``limit`` values seen in their own series and folds every
later one into ``other``. A value whose owner is gone (an API deleted: ``alive`` says no) gives its
place up the next time a new value finds the cap full (checked at most every ``recheck_s``); its
series are removed (``on_release``), so the place goes to the next value that shows up. Values of
live owners are never moved between their own series and ``other``, so counters stay monotonic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

OTHER = "other"
"""The label value of everything past the cap."""


class LabelCap:
    """At most ``limit`` distinct values of a label in their own series; the rest are ``other``."""

    def __init__(
        self,
        limit: int,
        alive: Callable[[str], bool] | None = None,
        on_release: Callable[[str], None] | None = None,
        recheck_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("the cap must allow at least one value")
        self.limit = limit
        self._alive = alive
        self._on_release = on_release
        self._recheck_s = recheck_s
        self._clock = clock
        self._kept: set[str] = set()
        self._next_check = 0.0
        self.folded = 0
        """Times a value was folded into ``other`` (how often the cap bites)."""

    def __call__(self, value: str) -> str:
        """The label value to use for ``value``."""
        if value in self._kept:
            return value
        if value == OTHER:
            return OTHER
        if len(self._kept) >= self.limit:
            self._release_gone()
        if len(self._kept) < self.limit:
            self._kept.add(value)
            return value
        self.folded += 1
        return OTHER

    @property
    def kept(self) -> frozenset[str]:
        return frozenset(self._kept)

    def _release_gone(self) -> None:
        if self._alive is None:
            return
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self._recheck_s
        for value in [v for v in self._kept if not self._alive(v)]:
            self._kept.discard(value)
            if self._on_release is not None:
                self._on_release(value)
