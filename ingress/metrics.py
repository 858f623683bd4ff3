"""Prometheus metrics of one ingress, in a registry of its own (never the global one).

Per-API series carry ``api_id`` (never a key, a name or a payload), and ``version`` (the version
number that answered) and ``status`` where they apply; at most ``max_apis`` API ids have series
of their own per process, the others count under ``api_id="other"`` (``infra.prometheus``), and
requests that named no known API under ``api_id="unknown"``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from infra.prometheus import LabelCap

UNKNOWN_API = "unknown"
"""``api_id`` of requests that named no API this ingress knows (any text may be sent there)."""


class IngressMetrics:
    """Requests by API and status, latency, batch sizes, in-flight requests, event buffer."""

    def __init__(
        self,
        max_apis: int = 100,
        api_alive: Callable[[str], bool] | None = None,
        api_recheck_s: float = 10.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.api_label = LabelCap(max_apis, api_alive, self._release_api, api_recheck_s)
        """``api_id`` label values: ``max_apis`` APIs at most, the rest ``other``."""
        self.requests = Counter(
            "ingress_requests_total",
            "Prediction requests by API, version number that answered (empty before one was "
            "chosen) and HTTP status",
            ["api_id", "version", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "ingress_request_duration_seconds",
            "Time from request to answer, by API",
            ["api_id"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.api_labels_folded = Gauge(
            "ingress_metric_api_labels_folded",
            'Times an API was counted under api_id="other" because the per-process cap on api_id '
            "label values (MODELGATE_INGRESS_METRICS_MAX_APIS) was reached",
            registry=self.registry,
        )
        self.api_labels_folded.set_function(lambda: float(self.api_label.folded))
        self.batch_rows = Histogram(
            "ingress_batch_rows",
            "Rows per micro-batch sent to predictors",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.batches = Counter(
            "ingress_batches_sent_total", "Micro-batches sent", registry=self.registry
        )
        self.inflight = Gauge(
            "ingress_inflight_requests", "Requests being answered", registry=self.registry
        )
        self.event_buffer = Gauge(
            "ingress_event_buffer_depth", "Request events not yet confirmed", registry=self.registry
        )
        self.events_published = Gauge(
            "ingress_events_published", "Events confirmed", registry=self.registry
        )
        self.events_dropped = Gauge(
            "ingress_events_dropped", "Request events dropped (buffer full)", registry=self.registry
        )
        self.predictors_online = Gauge(
            "ingress_predictors_online", "Consumers of the predict queue", registry=self.registry
        )
        self.registry_apis = Gauge("ingress_registry_apis", "APIs known", registry=self.registry)
        self.replicas_live = Gauge(
            "ingress_replicas_live",
            "Ingress replicas this one knows alive (itself included) and splits rate limits with",
            registry=self.registry,
        )
        self.heartbeats_sent = Gauge(
            "ingress_peer_heartbeats_sent",
            "Heartbeats this replica sent to the others (liveness and rate-limit demand)",
            registry=self.registry,
        )
        self.warm_switches_pending = Gauge(
            "ingress_warm_switches_pending",
            "APIs still answering with their previous version until the new one is reported warm",
            registry=self.registry,
        )
        self.warm_switches_timed_out = Gauge(
            "ingress_warm_switches_timed_out",
            "Version switches made without a ready report, once the wait for one ran out",
            registry=self.registry,
        )
        self.rpc_failed_on_close = Gauge(
            "ingress_rpc_failed_on_close",
            "Batches and snapshot calls failed because the broker connection closed under them",
            registry=self.registry,
        )
        self.rpc_late_replies = Gauge(
            "ingress_rpc_late_replies",
            "Replies that came after their call was over (timed out or failed)",
            registry=self.registry,
        )
        self.canary_requests = Counter(
            "ingress_canary_requests_total",
            "Requests answered by their API's canary version",
            ["api_id"],
            registry=self.registry,
        )
        self.shadow_calls = Counter(
            "ingress_shadow_calls_total",
            "Requests mirrored to their API's shadow version: sent, failed (a shadow answer other "
            "than 200; among the sent), dropped (too many shadow calls in flight)",
            ["api_id", "outcome"],
            registry=self.registry,
        )
        self.shadow_inflight = Gauge(
            "ingress_shadow_calls_inflight", "Shadow calls in flight", registry=self.registry
        )
        self.shed = Counter(
            "ingress_requests_shed_total",
            "Requests refused with 503 OVERLOADED because the predictors could not serve them in "
            "time: queue_delay (expected wait over the target), inflight_rows (the hard cap)",
            ["api_id", "reason"],
            registry=self.registry,
        )
        self.queue_delay = Gauge(
            "ingress_expected_queue_delay_seconds",
            "Expected wait of a new request before a predictor starts on it (load shedding input)",
            registry=self.registry,
        )
        self.rows_waiting = Gauge(
            "ingress_rows_waiting",
            "Rows submitted to predictors and not yet answered",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[MetricWrapperBase, MetricWrapperBase]] = {}
        self._api_of: dict[str, str] = {}
        self._per_api = (
            self.requests,
            self.duration,
            self.canary_requests,
            self.shadow_calls,
            self.shed,
        )

    def _api(self, api_id: str) -> str:
        """The ``api_id`` label of an API, decided once (an API folded into ``other`` stays
        there, so none of its series moves while it lives)."""
        label = self._api_of.get(api_id)
        if label is None:
            label = api_id if api_id == UNKNOWN_API else self.api_label(api_id)
            self._api_of[api_id] = label
        return label

    def _release_api(self, api_id: str) -> None:
        """An API is gone: its series leave, its place under the cap goes to the next one."""
        self._api_of.pop(api_id, None)
        for key in [k for k in self._children if k[0] == api_id]:
            del self._children[key]
        for metric in self._per_api:
            metric.remove_by_labels({"api_id": api_id})

    def request_done(self, api_id: str, status: int, seconds: float, version: str = "") -> None:
        key = (api_id, version, status)
        children = self._children.get(key)
        if children is None:
            api = self._api(api_id)
            children = self._children[key] = (
                self.requests.labels(api, version, str(status)),
                self.duration.labels(api),
            )
        children[0].inc()  # type: ignore[attr-defined]
        children[1].observe(seconds)  # type: ignore[attr-defined]

    def request_shed(self, api_id: str, reason: str) -> None:
        self.shed.labels(self._api(api_id), reason).inc()

    def canary_routed(self, api_id: str) -> None:
        self.canary_requests.labels(self._api(api_id)).inc()

    def shadow_call(self, api_id: str, outcome: str) -> None:
        self.shadow_calls.labels(self._api(api_id), outcome).inc()

    def batch_sent(self, rows: int) -> None:
        self.batches.inc()
        self.batch_rows.observe(rows)

    def bind(self, gauge: Gauge, read: Callable[[], float]) -> None:
        gauge.set_function(read)
