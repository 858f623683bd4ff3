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
