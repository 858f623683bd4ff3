"""Micro-batching per model version: many requests' rows leave as one ``PredictBatch`` message.

A batch leaves when it holds ``max_rows`` rows or ``max_wait_s`` after its first row; its reply
is split back to the requests. One timer per batch fails what is still waiting at the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ingress.admission import SHED_HEADERS, Admission
from ingress.errors import IngressError
from ingress.ids import new_id
from schemas import ErrorCode, Task
from schemas.messages import (
    BatchTrace,
    MessageError,
    PredictBatch,
    PredictResult,
    RowResult,
    decode,
    encode,
)
from schemas.trace import TRACEPARENT

log = logging.getLogger(__name__)

SendBatch = Callable[[str, bytes, float, dict[str, str]], Awaitable[None]]
"""Publishes one batch: (batch id, body, seconds until its deadline, AMQP headers)."""

Expect = Callable[[str, Callable[[bytes], None], Callable[[BaseException], None]], None]
"""Registers a batch's reply callback and the callback that fails it when the channel closes."""


class BatchAnswer:
    """A request's share of a batch reply: its rows' results and the batch's measurements."""

    __slots__ = ("batch_rows", "count", "reply", "start")

    def __init__(self, reply: PredictResult, start: int, count: int, batch_rows: int) -> None:
        self.reply = reply
        self.start = start
        self.count = count
        self.batch_rows = batch_rows

    @property
    def results(self) -> list[RowResult]:
        return self.reply.results[self.start : self.start + self.count]


class _OpenBatch:
    __slots__ = (
        "deadline",
        "due",
        "feature_names",
        "requests",
        "rows",
        "timer",
        "traces",
        "version_key",
        "want_proba",
    )

    def __init__(
        self, version_key: str, feature_names: list[str], want_proba: bool, deadline: float
    ) -> None:
        self.deadline = deadline
        """Loop time after which its first request is answered 504."""
        self.version_key = version_key
        self.feature_names = feature_names
        self.want_proba = want_proba
        self.rows: list[list[Any]] = []
        self.requests: list[tuple[asyncio.Future[BatchAnswer], int, int]] = []
        self.traces: list[BatchTrace] = []
        self.timer: asyncio.TimerHandle | None = None
        self.due = False
        """Its wait is over, but it waits for a free slot (too many batches in flight)."""


class _SentBatch:
    __slots__ = ("requests", "rows", "timer", "version_key")

    def __init__(
        self,
        version_key: str,
        requests: list[tuple[asyncio.Future[BatchAnswer], int, int]],
        rows: int,
    ) -> None:
        self.version_key = version_key
        self.requests = requests
        self.rows = rows
        self.timer: asyncio.TimerHandle | None = None


class MicroBatcher:
    """Collects rows per model version and sends them as one message per batch."""

    def __init__(
        self,
        max_rows: int,
        max_wait_s: float,
        timeout_s: float,
        on_batch_sent: Callable[[int], None] | None = None,
        max_inflight: int = 0,
        admission: Admission | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.admission = admission or Admission(0.0, 0, max_rows)
        """Counts the rows waiting and refuses a request past what predictors serve in time."""
        self.max_inflight = max_inflight
        """Batches of one model version in flight at most (0: no limit). Beyond it, a batch keeps
        filling until an answer frees a slot or it is full: under load batches grow instead of
        multiplying, so each message and each ``predict`` call carries more rows."""
        self._inflight: dict[str, int] = {}
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self.predictors_online = True
        self._send: SendBatch | None = None
        self._expect: Expect | None = None
        self._forget: Callable[[str], None] | None = None
        self._open: dict[str, _OpenBatch] = {}
        self._sent: dict[str, _SentBatch] = {}
        self._on_batch_sent = on_batch_sent
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches_sent = 0

    def attach(
        self,
        send: SendBatch,
        expect: Expect,
        forget: Callable[[str], None],
    ) -> None:
        """Connect the transport (the RPC client's send / expect / forget)."""
        self._send, self._expect, self._forget = send, expect, forget

    @property
    def waiting(self) -> int:
        return sum(len(b.requests) for b in self._sent.values()) + sum(
            len(b.requests) for b in self._open.values()
        )

    def submit(
        self,
        version_key: str,
        feature_names: list[str],
        want_proba: bool,
        rows: list[list[Any]],
        trace: BatchTrace | None = None,
    ) -> asyncio.Future[BatchAnswer]:
        """Queue a request's rows (``trace``: its id and trace context, handed to the
        predictor); the future gets its answer or an ``IngressError``."""
        if self._send is None or not self.predictors_online:
            raise IngressError(
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                "no prediction worker is available; try again shortly",
                headers=SHED_HEADERS,
            )
        self.admission.admit(len(rows))
        loop = asyncio.get_running_loop()
        batch = self._open.get(version_key)
        if batch is None:
            batch = self._open[version_key] = _OpenBatch(
                version_key, feature_names, want_proba, loop.time() + self.timeout_s
            )
            batch.timer = loop.call_later(self.max_wait_s, self._flush, version_key)
        future: asyncio.Future[BatchAnswer] = loop.create_future()
        batch.requests.append((future, len(batch.rows), len(rows)))
        batch.rows.extend(rows)
        if trace is not None:
            batch.traces.append(trace)
        if len(batch.rows) >= self.max_rows:
            self._flush(version_key)
        return future

    def _flush(self, version_key: str) -> None:
        batch = self._open.get(version_key)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if (
            self.max_inflight
            and self._inflight.get(version_key, 0) >= self.max_inflight
            and len(batch.rows) < self.max_rows
        ):
            if not batch.due:
                batch.due = True
                batch.timer = asyncio.get_running_loop().call_at(
                    batch.deadline, self._expire_open, version_key
                )
            return
        del self._open[version_key]
        self._inflight[version_key] = self._inflight.get(version_key, 0) + 1
        batch_id = new_id()
        now = time.time()
        loop = asyncio.get_running_loop()
        remaining = max(0.001, batch.deadline - loop.time())
        body = encode(
            PredictBatch(
                batch_id=batch_id,
                version_key=batch.version_key,
                task=Task.CLASSIFICATION if batch.want_proba else Task.REGRESSION,
                feature_names=batch.feature_names,
                rows=batch.rows,
                want_probabilities=batch.want_proba,
                sent_at=now,
                deadline=now + remaining,
                traces=batch.traces,
            )
        )
        # The message's own trace context: the request that opened the batch (the others'
        # are in ``traces``, one per request).
        headers = {TRACEPARENT: batch.traces[0].traceparent} if batch.traces else {}
        sent = self._sent[batch_id] = _SentBatch(version_key, batch.requests, len(batch.rows))
        sent.timer = loop.call_at(batch.deadline, self._expire, batch_id)
        assert self._expect is not None and self._send is not None
        self._expect(
            batch_id,
            lambda reply: self._answer(batch_id, reply),
            lambda exc: self._fail(batch_id, self._dropped_error(exc)),
        )
        task = loop.create_task(self._publish(batch_id, body, remaining, headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.batches_sent += 1
        if self._on_batch_sent is not None:
            self._on_batch_sent(len(batch.rows))

    async def _publish(
        self, batch_id: str, body: bytes, expiration_s: float, headers: dict[str, str]
    ) -> None:
        assert self._send is not None
        try:
            await self._send(batch_id, body, expiration_s, headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("batch %s not published: %s", batch_id, exc)
            self._fail(
                batch_id,
                IngressError(
                    503,
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "the prediction service is unreachable; try again shortly",
                ),
            )

    @staticmethod
    def _dropped_error(exc: BaseException) -> IngressError:
        """The broker connection dropped under a sent batch: fail it now, not at its deadline."""
        log.warning("batch failed before its reply: %s", exc)
        return IngressError(
            503,
            ErrorCode.SERVICE_UNAVAILABLE,
            "the connection to the prediction service dropped; try again shortly",
        )

    def _release(self, version_key: str) -> None:
        """A batch of this version is no longer in flight: send the one waiting for the slot."""
        left = self._inflight.get(version_key, 1) - 1
        if left > 0:
            self._inflight[version_key] = left
        else:
            self._inflight.pop(version_key, None)
        waiting = self._open.get(version_key)
        if waiting is not None and waiting.due:
            self._flush(version_key)

    def _answer(self, batch_id: str, body: bytes) -> None:
        sent = self._sent.pop(batch_id, None)
        if sent is None:
            return
        if sent.timer is not None:
            sent.timer.cancel()
        try:
            reply = decode(body, PredictResult)
            if reply.error_code is None and len(reply.results) != sent.rows:
                raise MessageError(f"{len(reply.results)} results for {sent.rows} rows")
        except MessageError as exc:
            self.admission.released(sent.rows)
            self._release(sent.version_key)
            log.error("malformed reply to batch %s: %s", batch_id, exc)
            error = IngressError(500, ErrorCode.INTERNAL_ERROR, "the prediction worker failed")
            for future, _, _ in sent.requests:
                if not future.done():
                    future.set_exception(error)
            return
        self.admission.completed(sent.rows, reply.inference_ms / 1000.0)
        self._release(sent.version_key)
        for future, start, count in sent.requests:
            if not future.done():
                future.set_result(BatchAnswer(reply, start, count, sent.rows))

    def _expire_open(self, version_key: str) -> None:
        """A batch still waiting for a slot reached its deadline."""
        batch = self._open.pop(version_key, None)
        if batch is None:
            return
        self.admission.released(len(batch.rows))
        error = self._timeout_error()
        for future, _, _ in batch.requests:
            if not future.done():
                future.set_exception(error)

    def _expire(self, batch_id: str) -> None:
        self._fail(batch_id, self._timeout_error())

    def _timeout_error(self) -> IngressError:
        if self.predictors_online:
            return IngressError(
                504, ErrorCode.TIMEOUT, f"no prediction within {self.timeout_s:g} s"
            )
        return IngressError(503, ErrorCode.SERVICE_UNAVAILABLE, "no prediction worker is available")

    def _fail(self, batch_id: str, error: IngressError) -> None:
        sent = self._sent.pop(batch_id, None)
        if self._forget is not None:
            self._forget(batch_id)
        if sent is None:
            return
        if sent.timer is not None:
            sent.timer.cancel()
        self.admission.released(sent.rows)
        for future, _, _ in sent.requests:
            if not future.done():
                future.set_exception(error)
        self._release(sent.version_key)

    def close(self) -> None:
        """Fail everything still waiting (shutdown)."""
        for version in list(self._open):
            self._flush_failed(version)
        for batch_id in list(self._sent):
            self._fail(
                batch_id, IngressError(503, ErrorCode.SERVICE_UNAVAILABLE, "ingress is stopping")
            )
        for task in self._tasks:
            task.cancel()

    def _flush_failed(self, version_key: str) -> None:
        batch = self._open.pop(version_key)
        if batch.timer is not None:
            batch.timer.cancel()
        self.admission.released(len(batch.rows))
        for future, _, _ in batch.requests:
            if not future.done():
                future.set_exception(
                    IngressError(503, ErrorCode.SERVICE_UNAVAILABLE, "ingress is stopping")
                )
