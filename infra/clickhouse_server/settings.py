"""Settings of the embedded ClickHouse server (``modelgate clickhouse``)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import BaseModel, Field

from infra.settings import CommonSettings


class ClickHouseUser(BaseModel):
    """A user of the embedded server; read-only users are served on ``readonly = 1`` connections."""

    name: str
    password: str = ""
    readonly: bool = False


def _default_users() -> list[ClickHouseUser]:
    return [
        ClickHouseUser(name="default", password="", readonly=False),
        ClickHouseUser(name="analyst", password="analyst", readonly=True),
    ]


class ClickHouseServerSettings(CommonSettings):
    """Where the embedded server listens, where it keeps data, who may use it."""

    clickhouse_server_host: str = "127.0.0.1"
    """Interface to bind; loopback by default so the password-less ``default`` user stays local."""

    clickhouse_server_port: int = 8123
    """HTTP port (ClickHouse's own default)."""

    clickhouse_server_data_dir: Path = Field(default_factory=lambda: Path(".modelgate/clickhouse"))
    """Directory of the engine's databases and tables; data survives restarts."""

    clickhouse_server_users: list[ClickHouseUser] = Field(default_factory=_default_users)
    """Users (JSON in MODELGATE_CLICKHOUSE_SERVER_USERS): name, password, readonly."""

    clickhouse_server_max_connections: int = 8
    """Engine connections, i.e. statements that run at the same time; more requests wait."""

    clickhouse_server_max_body_bytes: int = 1 << 30
    """Largest request body accepted after decompression (inserts stream, so this bounds disk)."""

    clickhouse_server_display_name: str = Field(default_factory=socket.gethostname)
    """Sent as ``X-ClickHouse-Server-Display-Name``."""
