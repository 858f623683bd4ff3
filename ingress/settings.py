"""Settings of the ingress edge server (environment variables ``MODELGATE_INGRESS_*``)."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from infra.settings import CommonSettings


def _default_ingress_id() -> str:
    return f"ingress-{socket.gethostname()}-{os.getpid()}"


class IngressSettings(CommonSettings):
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

    ingress_events_flush_ms: float = 50.0
    """Request events leave at least this often (one confirmed message per flush)."""

    ingress_events_flush_max: int = 500
    """Request events per message at most; a full batch leaves at once."""

    ingress_events_buffer_max: int = 200_000
    """Events kept while the broker is away; beyond this the oldest are dropped (and counted)."""

    ingress_payload_log_bytes: int = 2048
    """Request and response bodies are logged in events up to this size (when the API logs)."""

    ingress_cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    """Origins browsers may call the prediction APIs from (``*``: any)."""

    ingress_registry_resync_s: float = 60.0
    """Seconds between two full registry snapshots (control events keep it current between)."""

    ingress_registry_timeout_s: float = 5.0
    """How long one snapshot request waits for its answer before it is asked again."""

    ingress_default_rate_limit_per_minute: int = 100
    """Requests per minute per key when the API sets no limit of its own."""

    ingress_consumer_check_s: float = 1.0
    """Seconds between two checks that some predictor consumes the request queue."""
