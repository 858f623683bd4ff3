"""Load shedding: a request the predictors could not start on within the target is refused now.

Past what the predictors can serve, queued rows only grow until their deadline answers them 504,
and every answered request waits as long. Instead, ingress admits a request only while the rows
already waiting can be served within ``ingress_max_queue_delay_ms`` (Little's law: waiting rows /
the rate predictors complete rows while busy, less one batch's inference time, which is service,
not queueing), and never more than ``ingress_max_inflight_rows``; the rest get 503 ``OVERLOADED``
with ``Retry-After`` at once.

As CoDel does, a burst is not overload: shedding starts only once the expected delay has stayed
over the target for ``ingress_shed_after_ms`` (a burst, or a model loading, drains by then; the
queue may meanwhile grow to the target plus that much, never more), and stops once the waiting
rows are back under half the target's worth. In between, requests are
admitted as long as the queue is under the target, so it stays there and the predictors stay busy.
Throughput is measured from one answer to the next while requests wait, so neither idle time nor
the latency of the first answer (a model load) reads as slowness. The decision per request is a
few comparisons against numbers recomputed once per measuring window (``WINDOW_S``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ingress.errors import IngressError
from schemas import ErrorCode

WINDOW_S = 0.1
"""Busy time over which one throughput sample is taken."""

SMOOTHING = 0.3
"""Weight of the newest throughput and inference-time samples in their moving averages."""

RETRY_AFTER_S = 1
SHED_HEADERS = {"Retry-After": str(RETRY_AFTER_S)}


class Admission:
    """Counts the rows waiting for predictions and decides whether one more request may wait."""

    __slots__ = (
        "_above_since",
        "_burst_rows",
        "_clock",
        "_limit_rows",
        "_low_rows",
        "_window_rows",
        "_window_start",
        "floor_rows",
        "inference_s",
        "max_delay_s",
        "max_rows",
        "rate",
        "rows_pending",
        "shed",
        "shed_after_s",
        "shedding",
    )

    def __init__(
        self,
        max_delay_s: float,
        max_rows: int,
        floor_rows: int,
        shed_after_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_delay_s = max_delay_s
        """Longest expected wait before a request's rows reach a predictor (0: no such limit)."""
        self.max_rows = max_rows
        """Rows waiting (sent or batching) at most (0: no cap)."""
        self.floor_rows = max(1, floor_rows)
        """Below this many waiting rows a request is always admitted: a batch or so queues for
        at most about one batch's service, and a rate measured long ago must not refuse it."""
        self.shed_after_s = shed_after_s
        """How long the expected delay stays over the target before shedding starts."""
        self._clock = clock
        self.rows_pending = 0
        self.rate = 0.0
        """Rows completed per second of busy time (moving average); 0 until measured."""
        self.inference_s = 0.0
        """Inference time of one batch (moving average)."""
        self._limit_rows = float("inf")
        self._low_rows = float("inf")
        self._burst_rows = float("inf")
        self._above_since: float | None = None
        self.shedding = False
        self._window_start: float | None = None
        self._window_rows = 0
        self.shed = {"queue_delay": 0, "inflight_rows": 0}
        """Requests refused, by reason."""

    @property
    def expected_delay_s(self) -> float:
        """Wait a new request's rows would have before a predictor starts on them (estimate)."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, self.rows_pending / self.rate - self.inference_s)

    def admit(self, rows: int) -> None:
        """Count ``rows`` as waiting, or raise the 503 that refuses them."""
        pending = self.rows_pending
        if self.max_rows and pending + rows > self.max_rows and pending:
            self._refuse("inflight_rows", f"more than {self.max_rows} rows are waiting")
        if pending > self._limit_rows and pending >= self.floor_rows:
            if not self.shedding and pending <= self._burst_rows:
                now = self._clock()
                if self._above_since is None:
                    self._above_since = now
                self.shedding = now - self._above_since >= self.shed_after_s
            if self.shedding or pending > self._burst_rows:
                self._refuse(
                    "queue_delay",
                    f"predictions are queued for over {self.max_delay_s * 1000:g} ms",
                )
        elif self._above_since is not None and pending <= self._low_rows:
            self._above_since = None
            self.shedding = False
        if not pending:
            # Throughput is measured while rows wait only: an idle gap is no slowness.
            self._window_start = None
        self.rows_pending = pending + rows

    def _refuse(self, reason: str, why: str) -> None:
        self.shed[reason] += 1
        raise IngressError(
            503,
            ErrorCode.OVERLOADED,
            f"ingress is overloaded ({why}); retry in {RETRY_AFTER_S} s",
            {"reason": reason, "retry_after_s": RETRY_AFTER_S},
            headers=SHED_HEADERS,
        )

    def completed(self, rows: int, inference_s: float) -> None:
        """A batch of ``rows`` was answered after ``inference_s`` of inference."""
        self.rows_pending = max(0, self.rows_pending - rows)
        if self.inference_s <= 0:
            self.inference_s = inference_s
        else:
            self.inference_s += SMOOTHING * (inference_s - self.inference_s)
        now = self._clock()
        start = self._window_start
        if start is None:
            # From this answer on: the time before it (the first batch's whole latency) is not
            # a measure of how fast answers follow each other.
            self._window_start = now
            self._window_rows = 0
            return
        self._window_rows += rows
        elapsed = now - start
        if elapsed >= WINDOW_S:
            sample = self._window_rows / elapsed
            self.rate = sample if self.rate <= 0 else self.rate + SMOOTHING * (sample - self.rate)
            self._window_start = now
            self._window_rows = 0
            if self.max_delay_s > 0:
                self._limit_rows = self.rate * (self.max_delay_s + self.inference_s)
                self._low_rows = self._limit_rows / 2
                self._burst_rows = self._limit_rows + self.rate * self.shed_after_s

    def released(self, rows: int) -> None:
        """Rows no longer waiting without an answer (failed, expired): no throughput measured."""
        self.rows_pending = max(0, self.rows_pending - rows)
