"""Settings every service shares; each service's ``settings.py`` extends ``CommonSettings``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def with_credentials(url: str, user: str, password: str) -> str:
    """The URL with ``user:password@`` in it (replacing any credentials it had)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class CommonSettings(BaseSettings):
    """Where the shared infrastructure is. Environment variables are prefixed ``MODELGATE_``."""

    model_config = SettingsConfigDict(env_prefix="MODELGATE_", extra="ignore")

    namespace: str = "modelgate"
    """Prefix of every exchange and queue, so several stacks (or tests) share one broker."""

    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    """AMQP URL of RabbitMQ."""

    clickhouse_url: str = "http://default:@127.0.0.1:8123/"
    """HTTP URL of ClickHouse (the embedded ``modelgate clickhouse`` by default); it carries the
    user and password (``http://user:password@host:port/``)."""

    clickhouse_password_file: Path = Field(
        default_factory=lambda: Path(".modelgate/clickhouse/default_password")
    )
    """When ``clickhouse_url`` names user ``default`` without a password, the password is read
    from this file if it exists: the one the embedded server generates in its data directory."""

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

    gc_gen0_threshold: int = Field(50_000, ge=0)
    """Allocations between two young-generation garbage collections (Python's default is 700;
    0 keeps it). A request allocates hundreds of objects, so the default collects several times
    per request and rescans the service's long-lived objects often: at 50,000 ingress used ~22%
    less CPU per request and its p99 halved (bench/RESULTS.md). Objects made at start are frozen
    out of collections either way."""

    @model_validator(mode="after")
    def _clickhouse_password_from_file(self) -> CommonSettings:
        parts = urlsplit(self.clickhouse_url)
        user = unquote(parts.username or "default")
        if parts.password or user != "default" or not self.clickhouse_password_file.is_file():
            return self
        password = self.clickhouse_password_file.read_text().strip()
        if password:
            self.clickhouse_url = with_credentials(self.clickhouse_url, user, password)
        return self
