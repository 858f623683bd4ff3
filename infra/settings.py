"""Settings every service shares; each service's ``settings.py`` extends ``CommonSettings``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Where the shared infrastructure is. Environment variables are prefixed ``MODELGATE_``."""

    model_config = SettingsConfigDict(env_prefix="MODELGATE_", extra="ignore")

    namespace: str = "modelgate"
    """Prefix of every exchange and queue, so several stacks (or tests) share one broker."""

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    """AMQP URL of RabbitMQ."""

    clickhouse_url: str = "http://default:@127.0.0.1:8123/"
    """HTTP URL of ClickHouse (the embedded ``modelgate clickhouse`` by default)."""

    clickhouse_database: str = "modelgate"
    """ClickHouse database holding request events and rollups."""

    clickhouse_raw_ttl_days: int = 30
    """Days raw request events are kept in ClickHouse (rollups are kept longer)."""

    model_store: Path = Field(default_factory=lambda: Path(".modelgate/models"))
    """Directory of saved model versions (one folder per version, skops files)."""

    database_url: str = "sqlite+aiosqlite:///.modelgate/modelgate.db"
    """SQLAlchemy URL of the metadata database (users, models, APIs); PostgreSQL by URL."""

    public_ingress_url: str = "http://127.0.0.1:8000"
    """Base URL clients use to reach ingress (printed in API URLs and docs)."""

    log_level: str = "INFO"
    """Python logging level of the service."""
