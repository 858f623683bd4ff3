"""The predictor worker: consumes ``PredictBatch`` RPCs, replies per batch, samples its resources.

Several workers consume one queue (competing consumers). A batch is acknowledged only after its
reply left, so a worker killed mid-batch hands its unacknowledged batches back to the others.
Unless ``predictor_preload`` is off, the worker also follows control events and loads and warms
the versions it is about to be asked for, reporting them ready (``predictor.warmup``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import psutil
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from infra import amqp
from infra.model_store import ModelStore
from infra.topology import (
    VERSION_READY_KEY,
    WORKER_SAMPLE_KEY,
    DeclaredTopology,
    Topology,
    declare_topology,
)
from predictor.engine import BatchOutcome, BatchPredictor, ModelCache
from predictor.settings import PredictorSettings
from predictor.warmup import Preloader, serving_targets, targets_of_change
from schemas import (
    ApiChanged,
    PredictBatch,
    RegistrySnapshot,
    RegistrySnapshotRequest,
    VersionReady,
    WorkerSample,
)
from schemas.messages import MessageError, PredictResult, RowResult, decode, encode
from schemas.trace import parse_traceparent

log = logging.getLogger(__name__)
trace_log = logging.getLogger("predictor.trace")
"""One line per batch with the trace of each of its requests (``predictor_trace_log``)."""

MB = 1024.0 * 1024.0
MAX_MERGED_BATCHES = 64
INLINE_MAX_ROWS = 256
"""A batch of a version served by onnxruntime with at most this many rows is predicted on the
event loop; larger ones, and every scikit-learn one, in the prediction thread."""
SNAPSHOT_ATTEMPTS = 5


class WorkerMetrics:
    """Prometheus metrics of one worker, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.batches = Counter(
            "predictor_batches_total", "Batches predicted", ["outcome"], registry=self.registry
        )
        self.rows = Counter("predictor_rows_total", "Rows predicted", registry=self.registry)
        self.row_errors = Counter(
            "predictor_row_errors_total", "Rows that failed alone", registry=self.registry
        )
        self.expired = Counter(
            "predictor_batches_expired_total",
            "Batches dropped because their deadline had passed",
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "predictor_batch_seconds",
            "Inference time per batch",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "predictor_batch_rows",
            "Rows per batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.inflight = Gauge(
            "predictor_inflight_batches", "Batches being handled", registry=self.registry
        )
        self.models_loaded = Gauge(
            "predictor_models_loaded", "Model versions in the cache", registry=self.registry
        )
        self.rss = Gauge("predictor_rss_bytes", "Resident memory", registry=self.registry)
        self.preloads = Counter(
            "predictor_preloads_total",
            "Model versions loaded and warmed ahead of their requests, by outcome (ok, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.preload_seconds = Histogram(
            "predictor_preload_seconds",
            "Time to load a version and warm it with one prediction",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        for outcome in ("ok", "failed"):
            self.preloads.labels(outcome)


class Worker:
    """One predictor process: AMQP consumer, resource sampler and ``/metrics`` endpoint."""

    def __init__(self, settings: PredictorSettings) -> None:
        self.settings = settings
        self.worker_id = settings.predictor_id
        self.metrics = WorkerMetrics()
        self.cache = ModelCache(ModelStore(settings.model_store), settings.predictor_cache_size)
        self.predictor = BatchPredictor(self.cache)
        self.metrics_port: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._process = psutil.Process()
        self._rss_mb = self._process.memory_info().rss / MB
        self._connection: AbstractRobustConnection | None = None
        self._rpc_channel: AbstractChannel | None = None
        self._events_channel: AbstractChannel | None = None
        self._topology: DeclaredTopology | None = None
        self._consumer_tag: str | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._sampler: asyncio.Task[None] | None = None
        self._processor: asyncio.Task[None] | None = None
        self._received: asyncio.Queue[tuple[AbstractIncomingMessage, float]] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self.preloader: Preloader | None = None
        if settings.predictor_preload:
            self.preloader = Preloader(
                self.predictor,
                self.cache,
                self.worker_id,
                self._report_ready,
                self.metrics.preloads,
                self.metrics.preload_seconds,
                settings.predictor_preload_concurrency,
                settings.predictor_preload_queue_max,
                settings.predictor_preload_niceness,
            )
        self.batches = 0
        self.rows = 0

    async def start(self) -> None:
        """Connect, declare the topology, start consuming, sampling and serving metrics."""
        self._connection = await amqp.connect(
            self.settings.rabbitmq_url, self.worker_id, reconnect_interval=1.0
        )
        self._events_channel = await self._connection.channel(publisher_confirms=True)
        self._topology = await declare_topology(
            self._events_channel, Topology(self.settings.namespace)
        )
        self._rpc_channel = await self._connection.channel(publisher_confirms=False)
        await self._rpc_channel.set_qos(prefetch_count=self.settings.predictor_prefetch)
        queue = await self._rpc_channel.get_queue(self._topology.names.predict_requests)
        await self._start_metrics_server()
        self._process.cpu_percent(None)
        self._sampler = asyncio.create_task(self._sample_loop())
        self._processor = asyncio.create_task(self._process_loop())
        self._consumer_tag = await queue.consume(self._on_batch)
        self._queue = queue
        log.info("predictor %s consuming %s", self.worker_id, self._topology.names.predict_requests)
        if self.preloader is not None:
            await self._follow_control(self._connection, self._topology)

    async def _follow_control(
        self, connection: AbstractRobustConnection, topology: DeclaredTopology
    ) -> None:
        """Warm versions as control events announce them; at start, those the registry serves.

        Subscribed before the snapshot is asked for, so no deploy between the two is missed.
        """
        channel = await connection.channel(publisher_confirms=False)
        control = await channel.declare_queue(
            f"{topology.names.namespace}.control.{self.worker_id}.{uuid.uuid4().hex[:8]}",
            exclusive=True,
            auto_delete=True,
        )
        await control.bind(topology.control, routing_key="")
        await control.consume(self._on_control, no_ack=True)
        rpc = amqp.RpcClient(await connection.channel(publisher_confirms=False))
        await rpc.start()
        self._snapshot_task = asyncio.create_task(self._preload_serving(rpc, topology))

    async def _on_control(self, message: AbstractIncomingMessage) -> None:
        try:
            change = decode(message.body, ApiChanged)
        except MessageError as exc:
            log.error("undecodable control event ignored: %s", str(exc)[:300])
            return
        if self.preloader is not None:
            for target in targets_of_change(change):
                self.preloader.request(target)

    async def _preload_serving(self, rpc: amqp.RpcClient, topology: DeclaredTopology) -> None:
        """Ask the registry which versions active APIs serve and warm them (the cache's capacity
        at most). Without an answer after a few tries they load on their first request."""
        request = encode(RegistrySnapshotRequest(requester=self.worker_id))
        timeout = self.settings.predictor_preload_snapshot_timeout_s
        for attempt in range(SNAPSHOT_ATTEMPTS):
            try:
                body = await rpc.call(topology.names.registry_snapshot, request, timeout=timeout)
                snapshot = decode(body, RegistrySnapshot)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("registry snapshot for preloading failed (%r)", exc)
                await asyncio.sleep(min(2.0**attempt, 10.0))
        else:
            log.warning("no registry snapshot: served versions load on their first request")
            return
        targets = serving_targets(snapshot.apis, self.settings.predictor_cache_size)
        log.info("preloading %d served model versions", len(targets))
        for target in targets:
            if self.preloader is not None:
                self.preloader.request(target)

    async def _report_ready(self, ready: VersionReady) -> None:
        if self._topology is None:
            return
        await amqp.publish(self._topology.events, encode(ready), VERSION_READY_KEY, mandatory=False)

    async def stop(self) -> None:
        """Stop taking batches, finish the in-flight ones, then close everything."""
        if self._consumer_tag is not None:
            with suppress(Exception):
                await self._queue.cancel(self._consumer_tag)
            self._consumer_tag = None
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.predictor_shutdown_grace_s)
        except TimeoutError:
            log.warning("stopping with %d batches still in flight", self._inflight)
        if self.preloader is not None:
            await self.preloader.stop()
        for task in (self._sampler, self._processor, self._snapshot_task):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        if self._connection is not None:
            await self._connection.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("predictor %s stopped", self.worker_id)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _on_batch(self, message: AbstractIncomingMessage) -> None:
        self._inflight += 1
        self._idle.clear()
        self.metrics.inflight.inc()
        self._received.put_nowait((message, time.time()))

    def _done(self, count: int) -> None:
        self._inflight -= count
        self.metrics.inflight.dec(count)
        if self._inflight == 0:
            self._idle.set()

    async def _process_loop(self) -> None:
        """Take every batch waiting, merge those of one model into one ``predict`` call.

        Under load the batches that queued up while the model was busy are predicted together,
        so the fixed cost of a call (frame building, input checks) is paid once for all of them.
        """
        while True:
            items = [await self._received.get()]
            while not self._received.empty() and len(items) < MAX_MERGED_BATCHES:
                items.append(self._received.get_nowait())
            try:
                await self._predict_items(items)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unexpected failure handling batches; they go back to the queue")
                for message, _ in items:
                    with suppress(Exception):
                        await message.nack(requeue=True)
            finally:
                self._done(len(items))

    async def _predict_items(self, items: list[tuple[AbstractIncomingMessage, float]]) -> None:
        groups: dict[tuple[str, tuple[str, ...], bool], list[tuple[Any, PredictBatch, float]]] = {}
        for message, received in items:
            try:
                batch = decode(message.body, PredictBatch)
            except MessageError as exc:
                log.error("undecodable batch dropped: %s", str(exc)[:300])
                await message.reject(requeue=False)
                continue
            if batch.deadline < time.time():
                self.metrics.expired.inc()
                await message.ack()
                continue
            if self.settings.predictor_trace_log and batch.traces:
                self._log_traces(batch)
            key = (batch.version_key, tuple(batch.feature_names), batch.want_probabilities)
            groups.setdefault(key, []).append((message, batch, received))
        loop = asyncio.get_running_loop()
        for (version, names, want_proba), members in groups.items():
            rows = [row for _, batch, _ in members for row in batch.rows]
            outcome: BatchOutcome
            if len(rows) <= INLINE_MAX_ROWS and self.cache.compiled(version):
                # onnxruntime answers a small batch in ~30-100 us: a hand-off to the thread and
                # back would cost more (latency and CPU) than the prediction itself.
                outcome = self.predictor.run(version, list(names), rows, want_proba)
            else:
                outcome = await loop.run_in_executor(
                    self._executor, self.predictor.run, version, list(names), rows, want_proba
                )
            self._count(len(members), len(rows), outcome)
            offset = 0
            for message, batch, received in members:
                count = len(batch.rows)
                share = count / max(1, len(rows))
                await self._reply(
                    message,
                    batch,
                    received,
                    results=outcome.results[offset : offset + count]
                    if not outcome.error_code
                    else [],
                    outcome=outcome,
                    cpu_ms=outcome.cpu_ms * share,
                )
                offset += count

    def _log_traces(self, batch: PredictBatch) -> None:
        """``batch <id> version <key> rows <n>: trace=<trace id> parent=<ingress span>
        request=<id> rows=<k>; ...`` (the trace id is a traceparent's second field)."""
        if not trace_log.isEnabledFor(logging.INFO):
            return
        parts = []
        for trace in batch.traces:
            context = parse_traceparent(trace.traceparent)
            trace_id, parent = (context.trace_id, context.parent_id) if context else ("-", "-")
            parts.append(
                f"trace={trace_id} parent={parent} request={trace.request_id[:64]} "
                f"rows={trace.rows}"
            )
        trace_log.info(
            "batch %s version %s rows %d on %s: %s",
            batch.batch_id,
            batch.version_key,
            len(batch.rows),
            self.worker_id,
            "; ".join(parts),
        )

    async def _reply(
        self,
        message: AbstractIncomingMessage,
        batch: PredictBatch,
        received: float,
        results: list[RowResult],
        outcome: BatchOutcome,
        cpu_ms: float,
    ) -> None:
        if message.reply_to and self._rpc_channel is not None:
            reply = PredictResult(
                batch_id=batch.batch_id,
                version_key=batch.version_key,
                worker_id=self.worker_id,
                results=results,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                queue_ms=max(0.0, (received - batch.sent_at) * 1000.0),
                inference_ms=outcome.inference_ms,
                cpu_ms=cpu_ms,
                worker_rss_mb=self._rss_mb,
            )
            await amqp.reply(self._rpc_channel, message, encode(reply))
        await message.ack()

    def _count(self, batches: int, rows: int, outcome: BatchOutcome) -> None:
        self.batches += batches
        self.rows += rows
        self.metrics.batches.labels("error" if outcome.error_code else "ok").inc(batches)
        self.metrics.rows.inc(rows)
        self.metrics.row_errors.inc(outcome.row_errors)
        self.metrics.batch_rows.observe(rows)
        self.metrics.batch_seconds.observe(outcome.inference_ms / 1000.0)

    def sample(self) -> WorkerSample:
        """The worker's resources now: CPU % since the last sample, RSS, loaded models."""
        loaded = self.sample_gauges()
        return WorkerSample(
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            cpu_percent=self._process.cpu_percent(None),
            rss_mb=round(self._rss_mb, 2),
            loaded_models=list(loaded),
            model_memory_mb={key: round(size / MB, 3) for key, size in loaded.items()},
            batches=self.batches,
            rows=self.rows,
        )

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.predictor_sample_interval_s)
            sample = self.sample()
            if self._topology is None:
                continue
            try:
                await amqp.publish(self._topology.events, encode(sample), WORKER_SAMPLE_KEY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker sample not published: %s", exc)

    async def _start_metrics_server(self) -> None:
        port = self.settings.predictor_metrics_port
        if port < 0:
            return

        async def metrics(_: web.Request) -> web.Response:
            self.sample_gauges()
            return web.Response(
                body=generate_latest(self.metrics.registry),
                headers={"Content-Type": CONTENT_TYPE_LATEST},
            )

        async def health(_: web.Request) -> web.Response:
            # Name and id (``modelgate up`` checks it reached this process); 200 once consuming.
            consuming = self._consumer_tag is not None
            body = {
                "status": "ok" if consuming else "starting",
                "service": "predictor",
                "instance_id": self.worker_id,
                "consuming": consuming,
            }
            return web.json_response(body, status=200 if consuming else 503)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/health", health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.predictor_metrics_host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.metrics_port = sockets[0].getsockname()[1] if sockets else port

    def sample_gauges(self) -> dict[str, int]:
        """Read RSS and the loaded models now into the gauges (and the RSS replies report)."""
        self._rss_mb = self._process.memory_info().rss / MB
        loaded = self.cache.loaded()
        self.metrics.rss.set(self._rss_mb * MB)
        self.metrics.models_loaded.set(len(loaded))
        return loaded
