"""Settings of a predictor worker (environment variables ``MODELGATE_PREDICTOR_*``)."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from infra.settings import CommonSettings


def _default_worker_id() -> str:
    return f"predictor-{socket.gethostname()}-{os.getpid()}"


class PredictorSettings(CommonSettings):
    """How one predictor worker runs; several run side by side as competing consumers."""

    predictor_id: str = Field(default_factory=_default_worker_id)
    """Name of this worker in replies, samples and metrics."""

    predictor_metrics_port: int = 9101
    """Port of the Prometheus ``/metrics`` endpoint (0: any free port; -1: none)."""

    predictor_metrics_host: str = "127.0.0.1"
    """Interface the ``/metrics`` endpoint listens on."""

    predictor_cache_size: int = 10
    """Model versions kept loaded (least recently used are evicted)."""

    predictor_sample_interval_s: float = 5.0
    """Seconds between two ``WorkerSample`` events."""

    predictor_prefetch: int = 16
    """Batches a worker holds unacknowledged; a dead worker's batches go to the others."""

    predictor_shutdown_grace_s: float = 10.0
    """Seconds a stopping worker waits for its in-flight batches to finish."""

    predictor_preload: bool = True
    """Load and warm a model version before its first request: when an API is exported or a version
    deployed (control events), and at start for the versions the registry serves; each is reported
    ready to ingress, which moves traffic to a new version only then. False: versions load on their
    first request (and ingress switches when its wait for a ready report runs out)."""

    predictor_preload_concurrency: int = Field(1, ge=1, le=16)
    """Versions loaded at the same time at most (threads of their own, beside the predict one)."""

    predictor_preload_queue_max: int = Field(64, ge=1)
    """Versions waiting to be preloaded at most; beyond it a version loads on its first request."""

    predictor_preload_niceness: int = Field(0, ge=0, le=19)
    """How much lower than the worker's the preload threads' CPU priority is (Linux ``nice``, per
    thread; 0: the same). +10 made preloads about twice as slow on a busy 2-core machine for no
    clear gain in the latency of the versions already served (bench/RESULTS.md, warm switch)."""

    predictor_preload_snapshot_timeout_s: float = 5.0
    """How long the start-up registry snapshot request waits for its answer (asked a few times)."""

    predictor_trace_log: bool = True
    """Log one line per batch (logger ``predictor.trace``, INFO) naming each of its requests: its
    request id, W3C trace id and rows, so a request is found in the predictor's log by the trace
    id of its answer's ``traceparent`` or of its ClickHouse row. One line per batch, not per
    request: under load a batch holds many requests."""
