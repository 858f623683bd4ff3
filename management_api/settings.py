"""Settings of the management API (env prefix ``MODELGATE_``, fields prefixed ``management_``)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import AliasChoices, Field

from infra.http import HttpServerSettings


class ManagementSettings(HttpServerSettings):
    """Where the management API listens, how it signs tokens, and its defaults."""

    management_host: str = "127.0.0.1"
    """Interface the HTTP server binds."""

    management_port: int = 8080
    """Port of the management API and the dashboard."""

    management_id: str = Field(
        default_factory=lambda: f"management-api-{socket.gethostname()}-{os.getpid()}"
    )
    """Name of this process in ``/health`` (so a supervisor knows it reached the right one)."""

    management_data_dir: Path = Field(
        default=Path(".modelgate"),
        validation_alias=AliasChoices(
            "MODELGATE_MANAGEMENT_DATA_DIR", "MODELGATE_STACK_DATA_DIR", "management_data_dir"
        ),
    )
    """Directory of the generated JWT secret (the stack's data dir under ``modelgate up``)."""

    management_jwt_secret: str | None = None
    """Secret signing the JWTs; generated once and kept in the data dir when not set."""

    management_token_ttl_s: int = 12 * 3600
    """Lifetime of an access token in seconds."""

    management_metrics_token: str = ""
    """Bearer token that reads ``/metrics`` from anywhere. Empty: ``/metrics`` answers only
    clients on the loopback interface that came through no proxy (``management_api.metrics``)."""

    management_admin_username: str = "admin"
    """Username of the first admin, created at start when no admin exists."""

    management_admin_password: str | None = None
    """Password of the first admin; when not set, generated into ``<data dir>/admin-password``
    (0600). No default."""

    management_password_hash_workers: int = Field(0, ge=0)
    """Password hashes (argon2, ~64 MiB each) computed at once, off the event loop; 0: one per
    CPU."""

    management_password_hash_queue: int = Field(64, ge=0)
    """Logins (and password changes) that may wait for a hash worker; more get 503 at once."""

    management_login_failures_per_username: int = Field(5, ge=1)
    """Failed logins for one username before it is locked (from addresses it never used)."""

    management_login_failures_per_address: int = Field(20, ge=1)
    """Failed logins from one client address, whatever the usernames, before it is locked."""

    management_login_first_lock_s: float = Field(2.0, gt=0)
    """First lock after the free failures, in seconds; each further failure doubles it."""

    management_login_max_lock_s: float = Field(300.0, gt=0)
    """Longest lock, in seconds: a guesser is slowed, a real user is never locked out for good."""

    management_trusted_proxies: list[str] = []
    """Reverse proxies (addresses or CIDRs, JSON list) whose ``X-Forwarded-For`` names the client
    for the login throttle; from anyone else the header is ignored."""

    management_static_dir: Path = Field(default_factory=lambda: Path(__file__).parent / "static")
    """The dashboard's build output, served at ``/``."""

    management_training_workers: int = 2
    """Training jobs running at once, all users together; each runs in its own child process."""

    management_training_per_user: int = 1
    """Training jobs one user may have running at once; the rest wait, with their queue position."""

    management_training_queued_per_user: int = 10
    """Training jobs one user may have waiting; more are refused with 429."""

    management_training_time_limit_s: float = 600.0
    """Wall-clock limit of one training job: past it the process is killed and the job fails."""

    management_training_memory_mb: int = 2048
    """Memory (address space, MiB) one training process may take beyond its libraries; past it
    the job fails."""

    management_compile_memory_mb: int = Field(1024, ge=64)
    """Memory (address space, MiB) converting one version to ONNX and checking it may take (its
    own child process); past it the version is served by scikit-learn, the reason recorded."""

    management_compile_time_limit_s: float = Field(120.0, gt=0)
    """Wall-clock and CPU limit of one ONNX conversion and check; past it, scikit-learn serves
    the version, the reason recorded."""

    management_csv_max_features: int = 1000
    """Feature columns (besides the target) a training CSV may have; more is refused with 400."""

    management_csv_max_rows: int = 1_000_000
    """Rows a training CSV may have; more is refused with 400 before parsing."""

    management_csv_max_cells: int = 10_000_000
    """Cells (rows times columns) a training CSV may have; more is refused with 400."""

    management_max_upload_mb: int = 50
    """Largest CSV or skops upload accepted."""

    management_monitoring_timeout_s: float = 5.0
    """How long a monitoring query may take before the route answers 503."""

    management_default_cpu_percent: float = 80.0
    """Default alert threshold: CPU % of the workers serving an API."""

    management_default_memory_mb: float = 1024.0
    """Default alert threshold: resident memory (MB) of the workers serving an API."""

    management_default_error_rate: float = 0.05
    """Default alert threshold: share of failed requests over the last 24 h."""

    management_default_p95_ms: float = 500.0
    """Default alert threshold: p95 latency (ms) over the last 24 h."""

    management_alert_evaluation_s: float = Field(15.0, gt=0, le=3600)
    """The alert engine evaluates every rule this often (and the lease ticks at this pace)."""

    management_public_url: str | None = None
    """Address the dashboard is reached at from outside (e.g. ``https://modelgate.example``):
    notifications link to an API's page there. Unset: ``http://<host>:<port>``."""

    management_webhook_allow_private: bool = False
    """Let webhooks reach private, loopback and link-local addresses (tests, trusted LANs). Off:
    such destinations are refused at creation and at every delivery (SSRF)."""

    management_webhook_max_attempts: int = Field(6, ge=1, le=20)
    """Delivery attempts of one notification before it is dead-lettered and logged as failed."""

    management_webhook_retry_base_s: float = Field(1.0, gt=0, le=3600)
    """First retry delay; each further retry doubles it (1 s, 2 s, 4 s…)."""

    management_webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    """Time a webhook receiver has to answer one delivery."""

    management_smtp_host: str | None = None
    """SMTP server of e-mail notifications; unset: e-mail endpoints are logged as failed."""

    management_smtp_port: int = Field(25, ge=1, le=65535)
    management_smtp_from: str = "modelgate@localhost"
    management_smtp_username: str | None = None
    management_smtp_password: str | None = None
    management_smtp_starttls: bool = False
