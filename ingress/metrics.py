"""Prometheus metrics of one ingress, in a registry of its own (never the global one)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase


class IngressMetrics:
    """Requests by API and status, latency, batch sizes, in-flight requests, event buffer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ingress_requests_total",
            "Prediction requests by API and status",
            ["api_id", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "ingress_request_duration_seconds",
            "Time from request to answer",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
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
        self._children: dict[tuple[str, int], MetricWrapperBase] = {}

    def request_done(self, api_id: str, status: int, seconds: float) -> None:
        child = self._children.get((api_id, status))
        if child is None:
            child = self._children[(api_id, status)] = self.requests.labels(api_id, str(status))
        child.inc()  # type: ignore[attr-defined]
        self.duration.observe(seconds)

    def batch_sent(self, rows: int) -> None:
        self.batches.inc()
        self.batch_rows.observe(rows)

    def bind(self, gauge: Gauge, read: Callable[[], float]) -> None:
        gauge.set_function(read)
