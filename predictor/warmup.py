"""Warm switch, predictor side: load and warm the versions ingress is about to send, and say so.

A predictor follows the ``control`` fanout on a queue of its own (exclusive, auto-delete, like
ingress's registry client). When an API is created, updated or given a new version, canary or
shadow (an ``ApiChanged`` carrying its record), and at start for the versions the registry
snapshot lists as served by active APIs (at most the cache's capacity), the worker loads each
version the API sends traffic to (``ApiRecord.version_key`` and ``traffic.version_key``) into
the same ``ModelCache`` the request path uses and warms it with one prediction on a synthetic
valid row built from the API's features. Preloads run in threads of their own
(``predictor_preload_concurrency`` at most, ``predictor_preload_queue_max`` versions waiting at
most), so batches of the versions already loaded keep being answered meanwhile; a request for a
version being preloaded waits for that load instead of loading it again.

Each preload ends with a ``VersionReady`` published on the ``events`` exchange under routing key
``version.ready`` (``infra.topology.VERSION_READY_KEY``; no durable queue binds it, each ingress
binds a queue of its own): ``ok`` with the load time, or ``ok=False`` with the reason. A version
already loaded is reported ready at once. A version that cannot load is logged and reported as
failed; it never stops the worker. Ingress moves an API's traffic to a new version once every
predictor consuming requests has answered for it and one reported it ready, or its wait runs out
(see ``ingress.registry``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace

from prometheus_client import Counter, Histogram

from predictor.engine import BatchPredictor, ModelCache
from schemas import (
    ApiChanged,
    ApiChangeKind,
    ApiRecord,
    ApiStatus,
    FeatureSpec,
    FeatureType,
    Task,
    VersionReady,
)
from schemas.messages import JsonScalar

log = logging.getLogger(__name__)

MAX_ERROR = 300

Report = Callable[[VersionReady], Awaitable[None]]


@dataclass(frozen=True)
class WarmTarget:
    """A version to load and the request it is warmed with (as ingress would send it)."""

    version_key: str
    feature_names: tuple[str, ...]
    row: tuple[JsonScalar, ...]
    classifier: bool


def synthetic_value(spec: FeatureSpec) -> JsonScalar:
    """A value ingress's validation accepts for the feature (the first category for categories)."""
    if spec.type is FeatureType.CATEGORY:
        return spec.categories[0] if spec.categories else ""
    if spec.type is FeatureType.BOOLEAN:
        return False
    if spec.type is FeatureType.INTEGER:
        return 0
    return 0.0


def warm_target(record: ApiRecord) -> WarmTarget:
    """The version an API serves and a valid row of its features, in ingress's feature order."""
    return WarmTarget(
        version_key=record.version_key,
        feature_names=tuple(f.name for f in record.features),
        row=tuple(synthetic_value(f) for f in record.features),
        classifier=record.task is Task.CLASSIFICATION,
    )


def warm_targets(record: ApiRecord) -> list[WarmTarget]:
    """Every version an API sends traffic to: the serving one, then its canary or shadow (which
    takes the same inputs: the deploy guard refuses it otherwise)."""
    target = warm_target(record)
    split = record.traffic
    if split is None or split.version_key == record.version_key:
        return [target]
    return [target, replace(target, version_key=split.version_key)]


def targets_of_change(change: ApiChanged) -> list[WarmTarget]:
    """What a control event asks to warm: the record's versions, unless the event cannot change
    what is served (a rotated key, a deletion, a deactivation)."""
    record = change.api
    if record is None or change.kind in (ApiChangeKind.DELETED, ApiChangeKind.KEY_ROTATED):
        return []
    if change.kind is ApiChangeKind.STATUS and record.status is not ApiStatus.ACTIVE:
        return []
    return warm_targets(record)


def serving_targets(records: Iterable[ApiRecord], limit: int) -> list[WarmTarget]:
    """The versions active APIs serve (canaries and shadows included), most recently changed
    first, each once, ``limit`` at most."""
    active = [r for r in records if r.status is ApiStatus.ACTIVE]
    active.sort(key=lambda r: r.updated_at, reverse=True)
    targets: dict[str, WarmTarget] = {}
    for target in (t for record in active for t in warm_targets(record)):
        if len(targets) >= limit:
            break
        targets.setdefault(target.version_key, target)
    return list(targets.values())


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread yield the CPU to the others (Linux sets ``nice`` per thread), so a
    preload slows the answers of the versions already served less (0: leave it as it is)."""
    if niceness <= 0:
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + niceness))
    except (OSError, AttributeError) as exc:  # not Linux, or not allowed: run at normal priority
        log.debug("preload thread priority unchanged: %s", exc)


class Preloader:
    """Loads and warms versions in its own threads, one preload per version at a time, and
    reports each outcome through ``report`` (a failed report is logged, never raised)."""

    def __init__(
        self,
        predictor: BatchPredictor,
        cache: ModelCache,
        worker_id: str,
        report: Report,
        preloads: Counter,
        load_seconds: Histogram,
        concurrency: int = 1,
        queue_max: int = 64,
        niceness: int = 0,
    ) -> None:
        self._predictor = predictor
        self._cache = cache
        self._worker_id = worker_id
        self._report = report
        self._preloads = preloads
        self._load_seconds = load_seconds
        self._queue_max = max(1, queue_max)
        self._executor = ThreadPoolExecutor(
            max(1, concurrency),
            thread_name_prefix="preload",
            initializer=lower_thread_priority,
            initargs=(niceness,),
        )
        self._tasks: dict[str, asyncio.Task[VersionReady]] = {}
        self.dropped = 0

    def request(self, target: WarmTarget) -> asyncio.Task[VersionReady] | None:
        """Preload ``target`` (or join the preload of its version under way); None when too many
        versions are waiting already (then it loads on its first request, as without preload)."""
        task = self._tasks.get(target.version_key)
        if task is not None:
            return task
        if len(self._tasks) >= self._queue_max:
            self.dropped += 1
            log.warning(
                "%d preloads waiting; %s will load on its first request",
                len(self._tasks),
                target.version_key,
            )
            return None
        task = asyncio.create_task(self._preload(target), name=f"preload-{target.version_key}")
        self._tasks[target.version_key] = task
        task.add_done_callback(lambda _: self._tasks.pop(target.version_key, None))
        return task

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _preload(self, target: WarmTarget) -> VersionReady:
        loop = asyncio.get_running_loop()
        ready, loaded = await loop.run_in_executor(self._executor, self._load_and_warm, target)
        if loaded:
            self._preloads.labels("ok" if ready.ok else "failed").inc()
            if ready.ok:
                self._load_seconds.observe(ready.load_ms / 1000.0)
        try:
            await self._report(ready)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("readiness of %s not reported: %s", target.version_key, exc)
        return ready

    def _load_and_warm(self, target: WarmTarget) -> tuple[VersionReady, bool]:
        """In a preload thread: the report, and whether this call loaded (False: it was loaded)."""
        key = target.version_key
        if self._cache.holds(key):
            return VersionReady(version_key=key, predictor_id=self._worker_id, ok=True), False
        started = time.perf_counter()
        try:
            self._cache.get(key)
            # One prediction as ingress would ask it: the first call pays for lazy set-up
            # (imports, validation paths) that would otherwise land on a client's request.
            outcome = self._predictor.run(
                key, list(target.feature_names), [list(target.row)], target.classifier
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
            log.warning("preload of model version %s failed: %s", key, error)
            ready = VersionReady(
                version_key=key, predictor_id=self._worker_id, ok=False, error=error
            )
            return ready, True
        load_ms = (time.perf_counter() - started) * 1000.0
        if outcome.error_code:
            error = (outcome.error_message or outcome.error_code)[:MAX_ERROR]
            log.warning("preload of model version %s failed: %s", key, error)
            ready = VersionReady(
                version_key=key, predictor_id=self._worker_id, ok=False, error=error
            )
            return ready, True
        failed_row = next((r for r in outcome.results if r.error_code), None)
        if failed_row is not None:
            # Loaded and called: the synthetic row is only a warm-up, its answer is not needed.
            log.info("warm-up row of %s failed (%s)", key, failed_row.error_message)
        log.info("model version %s loaded and warm in %.0f ms", key, load_ms)
        return VersionReady(
            version_key=key, predictor_id=self._worker_id, ok=True, load_ms=round(load_ms, 3)
        ), True
