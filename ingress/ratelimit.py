"""Token buckets per API key: ``limit`` requests per minute, refilled continuously."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class RateDecision:
    """The outcome of one take, with what the RateLimit headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    """Seconds until the bucket is full again."""
    retry_after_s: int
    """Seconds until one request is allowed again (0 when allowed)."""

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class _Bucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / 60.0
        self.tokens = capacity
        self.updated = now


class RateLimiter:
    """One bucket per key; a changed limit takes effect at once. Not thread-safe (one loop)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def take(self, key: str, limit_per_minute: int) -> RateDecision:
        now = self._clock()
        limit = max(1, limit_per_minute)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != limit:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(limit), now)
        else:
            refill = (now - bucket.updated) * bucket.rate
            bucket.tokens = min(bucket.capacity, bucket.tokens + refill)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            allowed = True
            retry = 0
        else:
            allowed = False
            retry = max(1, math.ceil((1.0 - bucket.tokens) / bucket.rate))
        reset = math.ceil((bucket.capacity - bucket.tokens) / bucket.rate)
        return RateDecision(allowed, limit, int(bucket.tokens), reset, retry)

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)
