"""ClickHouse clients for every service, built from one URL (``MODELGATE_CLICKHOUSE_URL``).

The URL carries everything: ``http(s)://user:password@host:port/[database]``; an explicit
``database`` argument wins over the path. The same factory serves the embedded server and a real
ClickHouse, so no service special-cases either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.asyncclient import AsyncClient
from clickhouse_connect.driver.client import Client

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_identifier(name: str) -> bool:
    """Whether a name (a database) can go into SQL text unquoted: databases cannot be parameters."""
    return _IDENTIFIER.match(name) is not None


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where a ClickHouse URL points and as whom."""

    interface: str
    host: str
    port: int
    username: str
    password: str
    database: str | None


def parse_url(url: str, database: str | None = None) -> ClickHouseTarget:
    """Split a ClickHouse HTTP URL into what clickhouse-connect's factories take."""
    parts = urlsplit(url)
    interface = parts.scheme or "http"
    if interface not in {"http", "https"}:
        raise ValueError(f"ClickHouse URL must be http:// or https://, got {url!r}")
    path_database = parts.path.strip("/") or None
    return ClickHouseTarget(
        interface=interface,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8443 if interface == "https" else 8123),
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=database or path_database,
    )


def _client_kwargs(target: ClickHouseTarget) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "interface": target.interface,
        "host": target.host,
        "port": target.port,
        "username": target.username,
        "password": target.password,
        # One client is shared by concurrent tasks; ClickHouse refuses concurrent queries in
        # one session, so clients run sessionless.
        "autogenerate_session_id": False,
    }
    if target.database:
        kwargs["database"] = target.database
    return kwargs


def create_client(url: str, database: str | None = None) -> Client:
    """A synchronous clickhouse-connect client for the URL (and database, if given)."""
    return clickhouse_connect.get_client(**_client_kwargs(parse_url(url, database)))


async def create_async_client(url: str, database: str | None = None) -> AsyncClient:
    """An asyncio clickhouse-connect client for the URL (and database, if given)."""
    client: AsyncClient = await clickhouse_connect.get_async_client(
        **_client_kwargs(parse_url(url, database))
    )
    return client
