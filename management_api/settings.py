"""Settings of the management API (env prefix ``MODELGATE_``, fields prefixed ``management_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from infra.settings import CommonSettings


class ManagementSettings(CommonSettings):
    """Where the management API listens, how it signs tokens, and its defaults."""

    management_host: str = "127.0.0.1"
    """Interface the HTTP server binds."""

    management_port: int = 8080
    """Port of the management API and the dashboard."""

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

    management_admin_username: str = "admin"
    """Username of the first admin, created at start when no admin exists."""

    management_admin_password: str | None = None
    """Password of the first admin; generated and printed once when not set. No default."""

    management_static_dir: Path = Field(default_factory=lambda: Path(__file__).parent / "static")
    """The dashboard's build output, served at ``/``."""

    management_training_workers: int = 1
    """Threads training models concurrently (off the event loop)."""

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
