"""Settings of the ingress edge server (environment variables ``MODELGATE_INGRESS_*``)."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from infra.http import HttpServerSettings


def _default_ingress_id() -> str:
    return f"ingress-{socket.gethostname()}-{os.getpid()}"


class IngressSettings(HttpServerSettings):
    """How ingress listens, batches, limits and reports."""

    ingress_host: str = "127.0.0.1"
    """Interface the HTTP server listens on."""

    ingress_port: int = 8000
    """Port of the HTTP server."""

    ingress_id: str = Field(default_factory=_default_ingress_id)
    """Name of this ingress in request events."""

    ingress_max_body_bytes: int = 1024 * 1024
    """Largest accepted request body (larger: 413)."""

    ingress_max_instances: int = 100
    """Most rows one ``{"instances": [...]}`` request may carry."""

    ingress_batch_max_rows: int = 64
    """A micro-batch leaves as soon as it holds this many rows."""

    ingress_batch_max_wait_ms: float = 2.0
    """A micro-batch leaves at the latest this long after its first row arrived."""

    ingress_batch_max_inflight: int = 4
    """Batches of one model version in flight at most (0: no limit); beyond it batches grow
    (up to ``ingress_batch_max_rows``) instead of multiplying."""

    ingress_request_timeout_s: float = 5.0
    """Deadline of a prediction (504 after it); also the batch message's expiration."""

    ingress_max_queue_delay_ms: float = Field(500.0, ge=0)
    """Load shedding: a request is refused at once (503 ``OVERLOADED``, ``Retry-After``) when the
    rows already waiting would keep it this long before a predictor starts on it (waiting rows /
    the predictors' measured throughput, less one batch's inference). 0: no such limit."""

    ingress_shed_after_ms: float = Field(250.0, ge=0)
    """Load shedding starts once the expected wait has stayed over ``ingress_max_queue_delay_ms``
    this long: a shorter burst (or a model loading) is queued, not refused, as long as the wait
    stays under the target plus this. Shedding then holds the queue at the target until it
    drains under half of it."""

    ingress_max_inflight_rows: int = Field(4096, ge=0)
    """Load shedding: rows waiting for predictions (batching or sent) at most; a request beyond
    it is refused at once (503 ``OVERLOADED``). 0: no cap."""

    ingress_metrics_max_apis: int = Field(100, ge=1)
    """Prometheus: APIs with series of their own (``api_id`` label) in this process at most; the
    first ones to get traffic keep theirs, later ones count under ``api_id="other"``, and a
    deleted API's place goes to the next (docs/observability.md)."""

    ingress_events_flush_ms: float = 50.0
    """Request events leave at least this often (one confirmed message per flush)."""

    ingress_events_flush_max: int = 500
    """Request events per message at most; a full batch leaves at once."""

    ingress_events_buffer_max: int = 200_000
    """Events kept while the broker is away; beyond this the oldest are dropped (and counted)."""

    ingress_events_spool_dir: str = ""
    """Directory of this process's event spool: every event is written there (to the OS, no
    fsync) before its request is answered and replayed at the next start until the broker
    confirmed it, so a killed ingress loses no answered request's event. One directory per ingress
    process (it is locked). Empty: no spool, events wait in memory only (lost if killed)."""

    ingress_events_spool_segment_bytes: int = 8 * 1024 * 1024
    """A new spool file starts past this size; a file goes once all its events are confirmed."""

    ingress_payload_log_bytes: int = 2048
    """Request and response bodies are logged in events up to this size (when the API logs)."""

    ingress_cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    """Origins browsers may call the prediction APIs from (``*``: any)."""

    ingress_registry_resync_s: float = 60.0
    """Seconds between two full registry snapshots (control events keep it current between)."""

    ingress_registry_timeout_s: float = 5.0
    """How long one snapshot request waits for its answer before it is asked again."""

    ingress_warm_switch_timeout_s: float = 30.0
    """After a deploy, an API keeps answering with the version it served until some predictor
    reports the new version loaded and warm, or this long at most (then it switches anyway and
    logs it). 0: switch at once, loading the new version on its first request."""

    ingress_shadow_max_inflight: int = Field(256, ge=0)
    """Shadow calls (requests mirrored to an API's shadow version) in flight at most; a mirror
    beyond it is dropped and counted (``ingress_shadow_calls_total{outcome="dropped"}``), never
    queued. 0: no shadow call is made."""

    ingress_default_rate_limit_per_minute: int = 100
    """Requests per minute per key when the API sets no limit of its own."""

    ingress_feedback_items_per_minute: int = Field(60_000, ge=1)
    """Feedback reports (items, not requests) per minute per API at most, apart from the API's
    prediction rate limit (``POST /api/predict/{api_id}/feedback``; beyond it: 429)."""

    ingress_feedback_max_body_bytes: int = Field(256 * 1024, ge=1024)
    """Largest feedback body (1,000 items of a 32-digit id and a label fit in ~100 KB)."""

    ingress_broker_setup_timeout_s: float = 15.0
    """How long opening a broker session (channels, topology, reply and control consumers) may take;
    past it the connection is dropped and opened again, so a declare the broker never answers does
    not leave the ingress unready for good."""

    ingress_consumer_check_s: float = 1.0
    """Seconds between two checks that some predictor consumes the request queue."""

    ingress_ready_requires_predictor: bool = True
    """``/ready`` answers 503 until some predictor consumes the request queue, so a load balancer
    (or ``modelgate up``) sends no traffic that could only be answered 503. False: ready once the
    broker and the registry are (predictions still answer 503 while no predictor is online)."""

    ingress_peer_heartbeat_s: float = Field(1.0, gt=0)
    """Seconds between two heartbeats of this replica to the other ingress replicas (liveness and
    demand per key, from which each takes its share of every rate limit; docs/rate-limits.md)."""

    ingress_peer_expire_heartbeats: int = Field(3, ge=1)
    """A replica not heard for this many heartbeats (plus half of one) is dead: its share of every
    rate limit goes back to the others (a replica that stops cleanly says goodbye at once)."""

    ingress_reuse_port: bool = False
    """Listen with ``SO_REUSEPORT``, so that several ingress processes share the port (the kernel
    spreads new connections over them); ``modelgate up --ingress-workers N`` sets it for N > 1."""

    ingress_admin_socket: str = ""
    """Path of a Unix socket this process also serves on: where its own ``/health``, ``/ready``
    and ``/metrics`` are reached when several processes share the TCP port (a request on the port
    lands on any of them). Empty: none."""
