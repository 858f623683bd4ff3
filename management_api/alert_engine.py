"""The alert engine (issue 12): evaluates every enabled rule of every API from the ClickHouse
rollups, keeps each rule's state (``schemas.alerts``: ok → pending → firing → resolved), stores
every transition and publishes it on the ``events`` exchange.

One management-api process evaluates at a time: it holds the lease, the active consumer of the
``<ns>.alerts.lease`` single-active-consumer queue. Every process drops a small tick into that
queue each evaluation interval; only the active consumer receives them, and a tick received means
"you hold the lease for a few more intervals". When its broker connection drops it stops at once;
when it dies the broker makes another consumer active, which gets the next tick.

Transitions are stored first (the history is also the outbox: ``published`` false until the broker
confirmed the message) and published in order; what the broker does not take is retried at the
next cycle, in order, so nothing is lost and nothing is published twice by one process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from clickhouse_connect.driver.exceptions import OperationalError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra import amqp
from management_api.db import AlertRuleRow, AlertTransitionRow, ExportedApi, ModelVersion, new_id
from management_api.drift import max_feature_psi
from management_api.monitoring_sql import QUANTILES, check_database
from management_api.performance import classifier_apis, window_feedback
from management_api.queries import MonitoringQueries, api_memory_mb, cpu_share
from schemas import ApiStatus
from schemas.alerts import (
    ALERT_TRANSITION_KEY,
    AlertRule,
    AlertRuleKind,
    AlertState,
    AlertTransition,
)
from schemas.resources import AlertThresholds

log = logging.getLogger(__name__)

UNREACHABLE: tuple[type[Exception], ...] = (OperationalError, ConnectionError, TimeoutError)
"""An unreachable ClickHouse (as ``management_api.monitoring`` tells it): a warning per cycle."""

DEFAULT_RULES: list[tuple[AlertRuleKind, str, int, int]] = [
    (AlertRuleKind.ERROR_RATE_5XX, "error_rate", 300, 60),
    (AlertRuleKind.P95_MS, "p95_ms", 300, 60),
    (AlertRuleKind.CPU_PERCENT, "cpu_percent", 300, 120),
    (AlertRuleKind.MEMORY_MB, "memory_mb", 300, 120),
]
"""(kind, ``AlertThresholds`` field, window_s, for_s) of the rules every new API gets (the same
as migration 0008 backfills from the thresholds of existing APIs)."""
DEFAULT_MIN_REQUESTS = 20
LEASE_TICKS = 3
"""The lease lasts this many evaluation intervals after the last tick received."""
RATE_KINDS_NEEDING_TRAFFIC = frozenset(
    {
        AlertRuleKind.ERROR_RATE_5XX,
        AlertRuleKind.ERROR_RATE_4XX,
        AlertRuleKind.RATE_LIMIT_SATURATION,
        AlertRuleKind.P95_MS,
        AlertRuleKind.P99_MS,
    }
)


def default_rule_rows(api_id: str, thresholds: AlertThresholds) -> list[AlertRuleRow]:
    """The rules a new API starts with, from its thresholds."""
    values = thresholds.model_dump()
    return [
        AlertRuleRow(
            id=new_id(),
            api_id=api_id,
            kind=kind.value,
            threshold=float(values[field]),
            window_s=window_s,
            for_s=for_s,
            min_requests=DEFAULT_MIN_REQUESTS,
            enabled=True,
            position=position,
            state=AlertState.OK.value,
        )
        for position, (kind, field, window_s, for_s) in enumerate(DEFAULT_RULES)
    ]


def rule_of(row: AlertRuleRow) -> AlertRule:
    return AlertRule(
        id=row.id,
        api_id=row.api_id,
        kind=AlertRuleKind(row.kind),
        threshold=row.threshold,
        window_s=row.window_s,
        for_s=row.for_s,
        min_requests=row.min_requests,
        enabled=row.enabled,
    )


# --- figures and conditions -------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """What the rules of one API read over one window (zeros: no request at all)."""

    requests: int = 0
    previous_requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    rate_limited: int = 0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_percent: float = 0.0
    memory_mb: float = 0.0
    drift_psi: float | None = None
    """Largest feature PSI of the window (``drift_psi`` rules only; None: no reference)."""
    drift_rows: int = 0
    feedback: int = 0
    """Requests whose feedback came in the window (``accuracy_drop`` rules only)."""
    accuracy: float | None = None
    """Their live accuracy (classification APIs)."""
    rmse: float | None = None
    """Their live RMSE (regression APIs)."""


NO_FIGURES = Figures()


def measure(rule: AlertRule, figures: Figures) -> tuple[float | None, bool]:
    """The rule's value over its window and whether its condition holds (None: not enough data,
    which never holds)."""
    return condition(rule.kind, rule.threshold, rule.min_requests, figures)


def condition(
    kind: str, threshold: float, min_requests: int, figures: Figures
) -> tuple[float | None, bool]:
    """``measure`` from a rule's kind (``AlertRuleKind`` value), threshold and minimum."""
    if kind == AlertRuleKind.NO_TRAFFIC:
        return float(figures.requests), figures.requests == 0
    if kind == AlertRuleKind.TRAFFIC_DROP:
        previous = figures.previous_requests
        if previous == 0 or previous < min_requests:
            return None, False
        ratio = figures.requests / previous
        return ratio, ratio < threshold
    if kind == AlertRuleKind.CPU_PERCENT:
        return figures.cpu_percent, figures.cpu_percent > threshold
    if kind == AlertRuleKind.MEMORY_MB:
        return figures.memory_mb, figures.memory_mb > threshold
    if kind == AlertRuleKind.DRIFT_PSI:
        if figures.drift_psi is None or figures.drift_rows < max(1, min_requests):
            return None, False
        return figures.drift_psi, figures.drift_psi > threshold
    if kind == AlertRuleKind.ACCURACY_DROP:
        if figures.feedback == 0 or figures.feedback < min_requests:
            return None, False
        if figures.accuracy is not None:
            return figures.accuracy, figures.accuracy < threshold
        if figures.rmse is not None:
            return figures.rmse, figures.rmse > threshold
        return None, False
    if figures.requests == 0 or figures.requests < min_requests:
        return None, False
    value: float
    if kind == AlertRuleKind.ERROR_RATE_5XX:
        value = figures.errors_5xx / figures.requests
    elif kind == AlertRuleKind.ERROR_RATE_4XX:
        value = figures.errors_4xx / figures.requests
    elif kind == AlertRuleKind.RATE_LIMIT_SATURATION:
        value = figures.rate_limited / figures.requests
    elif kind == AlertRuleKind.P95_MS:
        value = figures.p95_ms
    else:
        value = figures.p99_ms
    return value, value > threshold


@dataclass(frozen=True)
class Step:
    """A rule's state after one evaluation; ``changed`` is the transition to store and publish
    (None: no transition, even when the state moved silently, e.g. pending → ok)."""

    state: AlertState
    since: datetime | None
    changed: tuple[AlertState, AlertState] | None = None


def step(state: AlertState, since: datetime | None, holds: bool, for_s: int, now: datetime) -> Step:
    """The state machine of ``schemas.alerts`` for one evaluation at ``now``."""
    if state in (AlertState.OK, AlertState.RESOLVED):
        if holds:
            to = AlertState.FIRING if for_s <= 0 else AlertState.PENDING
            return Step(to, now, (state, to))
        if state is AlertState.RESOLVED:
            return Step(AlertState.OK, now)  # resolved → ok, without a transition
        return Step(state, since)
    if state is AlertState.PENDING:
        if not holds:
            return Step(AlertState.OK, now)  # silently: it never fired
        started = since or now
        if (now - started).total_seconds() >= for_s:
            return Step(AlertState.FIRING, now, (AlertState.PENDING, AlertState.FIRING))
        return Step(state, started)
    # firing
    if holds:
        return Step(state, since)
    return Step(AlertState.RESOLVED, now, (AlertState.FIRING, AlertState.RESOLVED))


# --- ClickHouse ---------------------------------------------------------------------------------


def window_figures_sql(database: str) -> str:
    """Per API and window length, the current window [end - 60 - w, end) (whole minutes and the
    current one) and the request count of the window before it, from the minute rollup. One
    query for every API and every window length (``ARRAY JOIN`` of the lengths); ``since``, the
    start of the longest pair of windows, bounds the scan by the primary key."""
    db = check_database(database)
    cur = "bucket >= toDateTime({end:UInt32} - 60 - w, 'UTC')"
    return f"""
SELECT
    api_id,
    w,
    sumIf(requests, {cur}) AS n_now,
    sumIf(requests, NOT ({cur})) AS n_before,
    sumIf(errors_4xx, {cur}) AS e4,
    sumIf(errors_5xx, {cur}) AS e5,
    quantilesTDigestMergeIf({QUANTILES})(latency_quantiles, {cur}) AS q,
    sumIf(cpu_ms, {cur}) AS cpu_spent_ms,
    maxIf(worker_rss_max_mb, {cur}) AS rss_mb
FROM {db}.request_stats_1m
ARRAY JOIN {{windows:Array(UInt32)}} AS w
WHERE api_id IN {{api_ids:Array(String)}}
  AND bucket >= toDateTime({{since:UInt32}}, 'UTC')
  AND bucket < toDateTime({{end:UInt32}}, 'UTC')
  AND bucket >= toDateTime({{end:UInt32}} - 60 - 2 * w, 'UTC')
GROUP BY api_id, w
"""


def rate_limited_sql(database: str) -> str:
    """429 answers per API and window length, from the raw events (the rollups do not split
    4xx); asked only when a rate-limit saturation rule exists."""
    db = check_database(database)
    return f"""
SELECT api_id, w, count() AS limited
FROM {db}.request_events
ARRAY JOIN {{windows:Array(UInt32)}} AS w
WHERE api_id IN {{api_ids:Array(String)}}
  AND status_code = 429
  AND ts >= toDateTime64({{since:UInt32}}, 3, 'UTC')
  AND ts >= toDateTime64({{end:UInt32}} - 60 - w, 3, 'UTC')
  AND ts < toDateTime64({{end:UInt32}}, 3, 'UTC')
GROUP BY api_id, w
"""


def window_end(now: datetime) -> int:
    """End (epoch seconds) of the minute holding ``now``."""
    epoch = int(now.timestamp())
    return epoch - epoch % 60 + 60


def _finite(value: Any) -> float:
    number = float(value or 0)
    return number if math.isfinite(number) else 0.0


async def read_figures(
    queries: MonitoringQueries,
    api_ids: Sequence[str],
    windows: Sequence[int],
    now: datetime,
    rate_limit_windows: Sequence[int] = (),
    versions: Mapping[str, Sequence[str]] | None = None,
) -> dict[tuple[str, int], Figures]:
    """Figures per (api_id, window_s) for every API and window asked, in a few queries.

    CPU and memory are those the dashboard shows (``queries.cpu_share``, ``api_memory_mb``): the
    API's share of the predictors' CPU over the window, and the memory of the model versions it
    serves (``versions``: store keys per API; without it, the worker's RSS as before)."""
    if not api_ids or not windows:
        return {}
    end = window_end(now)
    params: dict[str, Any] = {"api_ids": list(api_ids), "windows": sorted(set(windows))}
    # ``since`` (the longest window's start) is a constant bound the primary key can use.
    since = end - 60 - 2 * max(windows)
    result = await queries.client.query(
        window_figures_sql(queries.database), parameters={**params, "end": end, "since": since}
    )
    predictors = (
        await queries.predictors(datetime.fromtimestamp(since, UTC))
        if versions is not None
        else None
    )
    figures: dict[tuple[str, int], Figures] = {}
    for row in result.named_results():
        w = int(row["w"])
        q = list(row["q"] or [])
        span_s = w + 60
        cpu = _finite(row["cpu_spent_ms"])
        if predictors is not None and versions is not None:
            cpu_percent = cpu_share(cpu, span_s, predictors.cores)
            memory_mb = api_memory_mb(predictors.held, versions.get(row["api_id"], ()))
        else:
            cpu_percent, memory_mb = cpu / (span_s * 1000) * 100, _finite(row["rss_mb"])
        figures[(row["api_id"], w)] = Figures(
            requests=int(row["n_now"]),
            previous_requests=int(row["n_before"]),
            errors_4xx=int(row["e4"]),
            errors_5xx=int(row["e5"]),
            p95_ms=_finite(q[2]) if len(q) > 2 else 0.0,
            p99_ms=_finite(q[3]) if len(q) > 3 else 0.0,
            cpu_percent=cpu_percent,
            memory_mb=memory_mb,
        )
    if rate_limit_windows:
        limited = await queries.client.query(
            rate_limited_sql(queries.database),
            parameters={
                **params,
                "windows": sorted(set(rate_limit_windows)),
                "end": end,
                "since": end - 60 - max(rate_limit_windows),
            },
        )
        for row in limited.named_results():
            key = (row["api_id"], int(row["w"]))
            figures[key] = replace(figures.get(key, NO_FIGURES), rate_limited=int(row["limited"]))
    return figures


async def read_drift(
    session: AsyncSession,
    queries: MonitoringQueries,
    wanted: set[tuple[str, int]],
    versions: Mapping[str, Sequence[str]],
    now: datetime,
    figures: dict[tuple[str, int], Figures],
) -> None:
    """``drift_psi`` figures (issue 15): per (API, window), the largest feature PSI of the rows
    its served version answered in the window against that version's reference profile."""
    served = {api_id: versions[api_id][0] for api_id, _ in wanted if versions.get(api_id)}
    stored = await session.execute(
        select(ModelVersion.id, ModelVersion.reference).where(
            ModelVersion.id.in_(set(served.values()))
        )
    )
    references: dict[str, dict[str, Any] | None] = {r.id: r.reference for r in stored}
    end_ms = int(now.timestamp() * 1000)
    for api_id, window_s in sorted(wanted):
        reference = references.get(served.get(api_id, ""))
        if not reference:
            continue
        value, _, rows = await max_feature_psi(
            queries, api_id, served[api_id], reference, end_ms - window_s * 1000, end_ms
        )
        key = (api_id, window_s)
        figures[key] = replace(figures.get(key, NO_FIGURES), drift_psi=value, drift_rows=rows)


async def read_accuracy(
    session: AsyncSession,
    queries: MonitoringQueries,
    wanted: set[tuple[str, int]],
    now: datetime,
    figures: dict[tuple[str, int], Figures],
) -> None:
    """``accuracy_drop`` figures (issue 15): per (API, window), the requests whose feedback came
    in the window, their accuracy (classification) or RMSE (regression)."""
    api_ids = sorted({api_id for api_id, _ in wanted})
    classifiers = await classifier_apis(session, api_ids)
    found = await window_feedback(queries, api_ids, sorted({w for _, w in wanted}), window_end(now))
    for key in sorted(wanted):
        got = found.get(key)
        if got is None:
            continue
        classifier = key[0] in classifiers
        figures[key] = replace(
            figures.get(key, NO_FIGURES),
            feedback=got.n,
            accuracy=got.accuracy if classifier else None,
            rmse=None if classifier else got.rmse,
        )


# --- the lease ----------------------------------------------------------------------------------


class Lease:
    """Held while this process's consumer of the single-active-consumer queue gets ticks."""

    def __init__(self, connection: AbstractRobustConnection, queue_name: str, tick_s: float):
        self._connection = connection
        self._queue_name = queue_name
        self._tick_s = tick_s
        self._until = 0.0
        self._channel: AbstractChannel | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return not self._connection.is_closed and time.monotonic() < self._until

    async def start(self) -> None:
        self._channel = await self._connection.channel()
        queue = await self._channel.declare_queue(
            self._queue_name,
            durable=False,
            arguments={
                "x-single-active-consumer": True,
                "x-max-length": 16,
                "x-message-ttl": 60_000,
            },
        )
        await queue.consume(self._on_tick)
        self._connection.close_callbacks.add(self._lost)
        self._task = asyncio.create_task(self._tick_loop(self._channel.default_exchange))

    def _lost(self, *_: Any) -> None:
        if self._until:
            log.warning("broker connection lost: alert evaluation lease given up")
        self._until = 0.0

    async def _on_tick(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        if self._connection.is_closed:
            return
        if not self.held:
            log.info("alert evaluation lease taken (%s)", self._queue_name)
        self._until = time.monotonic() + LEASE_TICKS * self._tick_s

    async def _tick_loop(self, exchange: AbstractExchange) -> None:
        while True:
            try:
                await exchange.publish(
                    aio_pika.Message(b"", expiration=max(0.001, LEASE_TICKS * self._tick_s)),
                    routing_key=self._queue_name,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("lease tick not sent: %r", exc)
            await asyncio.sleep(self._tick_s)

    async def stop(self) -> None:
        self._until = 0.0
        self._connection.close_callbacks.discard(self._lost)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # A robust channel of a lost connection would wait for the broker to come back.
        if self._channel is not None and not self._connection.is_closed:
            with suppress(Exception):
                await asyncio.wait_for(self._channel.close(), 5.0)


# --- the evaluator ------------------------------------------------------------------------------

Publish = Callable[[AlertTransition], Awaitable[None]]
QueriesFactory = Callable[[], Awaitable[MonitoringQueries]]


@dataclass(frozen=True)
class CycleReport:
    rules: int
    transitions: int
    published: int


def transition_of(row: AlertTransitionRow) -> AlertTransition:
    return AlertTransition(
        transition_id=row.transition_id,
        rule_id=row.rule_id,
        api_id=row.api_id,
        api_name=row.api_name,
        owner_id=row.owner_id,
        kind=AlertRuleKind(row.kind),
        from_state=AlertState(row.from_state),
        to_state=AlertState(row.to_state),
        value=row.value,
        threshold=row.threshold,
        window_s=row.window_s,
        for_s=row.for_s,
        at=row.at,
        silenced=row.silenced,
    )


class AlertEngine:
    """Evaluates every rule each ``interval_s`` while ``may_evaluate()`` (the lease) says so."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queries: QueriesFactory,
        publish: Publish,
        interval_s: float,
        may_evaluate: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sessions = sessions
        self._queries = queries
        self._publish = publish
        self.interval_s = interval_s
        self._may_evaluate = may_evaluate
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.cycles = 0
        """Cycles this process ran (tests read it to see who evaluates)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            if self._may_evaluate():
                try:
                    await self.cycle()
                except asyncio.CancelledError:
                    raise
                except UNREACHABLE as exc:
                    log.warning("alert evaluation skipped, ClickHouse unreachable: %r", exc)
                except Exception:
                    log.exception(
                        "alert evaluation cycle failed; next one in %.1fs", self.interval_s
                    )
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def cycle(self, now: datetime | None = None) -> CycleReport:
        """Evaluate every rule once, store the changes, publish what is unpublished."""
        async with self._lock:
            now = now or datetime.now(UTC)
            report = await self._evaluate(now)
            published = await self.publish_pending()
            self.cycles += 1
            return CycleReport(report[0], report[1], published)

    async def _evaluate(self, now: datetime) -> tuple[int, int]:
        rule = AlertRuleRow
        async with self._sessions() as session:
            # Plain columns, not ORM objects: thousands of rules are read every cycle.
            rows = (
                await session.execute(
                    select(
                        rule.id,
                        rule.api_id,
                        rule.kind,
                        rule.threshold,
                        rule.window_s,
                        rule.for_s,
                        rule.min_requests,
                        rule.state,
                        rule.state_since,
                        rule.value,
                        rule.silenced_until,
                        ExportedApi.name,
                        ExportedApi.owner_id,
                        ExportedApi.status,
                        ExportedApi.model_version_id,
                        ExportedApi.traffic_version_id,
                    )
                    .join(ExportedApi, ExportedApi.id == rule.api_id)
                    .where(rule.enabled.is_(True))
                )
            ).all()
            active = [r for r in rows if r.status == ApiStatus.ACTIVE.value]
            api_ids = sorted({r.api_id for r in active})
            versions = {
                r.api_id: [v for v in (r.model_version_id, r.traffic_version_id) if v]
                for r in active
            }
            windows = sorted({r.window_s for r in active})
            limit_windows = sorted(
                {r.window_s for r in active if r.kind == AlertRuleKind.RATE_LIMIT_SATURATION}
            )
            figures = (
                await read_figures(
                    await self._queries(), api_ids, windows, now, limit_windows, versions
                )
                if active
                else {}
            )
            drifting = {(r.api_id, r.window_s) for r in active if r.kind == AlertRuleKind.DRIFT_PSI}
            if drifting:
                await read_drift(session, await self._queries(), drifting, versions, now, figures)
            labelled = {
                (r.api_id, r.window_s) for r in active if r.kind == AlertRuleKind.ACCURACY_DROP
            }
            if labelled:
                await read_accuracy(session, await self._queries(), labelled, now, figures)
            changes: list[dict[str, Any]] = []
            transitions: list[AlertTransitionRow] = []
            for row in rows:
                if row.status == ApiStatus.ACTIVE.value:
                    value, holds = condition(
                        row.kind,
                        row.threshold,
                        row.min_requests,
                        figures.get((row.api_id, row.window_s), NO_FIGURES),
                    )
                else:
                    value, holds = None, False  # a deactivated API's alerts resolve
                current = AlertState(row.state)
                result = step(current, row.state_since, holds, row.for_s, now)
                if result.state is AlertState.OK and current is AlertState.OK:
                    if row.value is not None:
                        changes.append({"id": row.id, "value": None, "evaluated_at": now})
                    continue
                change: dict[str, Any] = {
                    "id": row.id,
                    "state": result.state.value,
                    "state_since": result.since,
                    "value": value,
                    "evaluated_at": now,
                }
                if result.state in (AlertState.OK, AlertState.RESOLVED):
                    change.update(acked_by=None, acked_at=None)
                changes.append(change)
                if result.changed is not None:
                    silenced = row.silenced_until is not None and row.silenced_until > now
                    transitions.append(
                        AlertTransitionRow(
                            transition_id=new_id(),
                            rule_id=row.id,
                            api_id=row.api_id,
                            owner_id=row.owner_id,
                            api_name=row.name,
                            kind=row.kind,
                            from_state=result.changed[0].value,
                            to_state=result.changed[1].value,
                            value=value,
                            threshold=row.threshold,
                            window_s=row.window_s,
                            for_s=row.for_s,
                            at=now,
                            silenced=silenced,
                            published=silenced,  # a silenced transition is never notified
                        )
                    )
            if changes:
                await session.execute(update(AlertRuleRow), changes)
            session.add_all(transitions)
            if transitions:
                await self._refresh_health(session, {t.api_id for t in transitions})
            await session.commit()
            return len(rows), len(transitions)

    @staticmethod
    async def _refresh_health(session: AsyncSession, api_ids: set[str]) -> None:
        """``exported_apis.health``: error while a 5xx error-rate rule of the API fires."""
        await session.flush()
        firing = set(
            (
                await session.scalars(
                    select(AlertRuleRow.api_id).where(
                        AlertRuleRow.api_id.in_(api_ids),
                        AlertRuleRow.kind == AlertRuleKind.ERROR_RATE_5XX.value,
                        AlertRuleRow.state == AlertState.FIRING.value,
                    )
                )
            ).all()
        )
        for api_id in api_ids:
            await session.execute(
                update(ExportedApi)
                .where(ExportedApi.id == api_id)
                .values(health="error" if api_id in firing else "ok")
            )

    async def publish_pending(self) -> int:
        """Publish the stored, unpublished transitions in order; stop at the first refusal (the
        rest waits for the next cycle, still in order)."""
        published = 0
        async with self._sessions() as session:
            pending = (
                await session.scalars(
                    select(AlertTransitionRow)
                    .where(AlertTransitionRow.published.is_(False))
                    .order_by(AlertTransitionRow.seq)
                    .limit(1000)
                )
            ).all()
            for row in pending:
                try:
                    await self._publish(transition_of(row))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "alert transition %s not published (%r); retried next cycle",
                        row.transition_id,
                        exc,
                    )
                    break
                row.published = True
                published += 1
                await session.commit()
        return published


async def publish_transition(events: AbstractExchange, transition: AlertTransition) -> None:
    """One ``AlertTransition`` on the events exchange (persistent; raises unless confirmed)."""
    await amqp.publish(
        events,
        transition.model_dump_json().encode(),
        ALERT_TRANSITION_KEY,
        message_id=transition.transition_id,
        mandatory=False,
    )
