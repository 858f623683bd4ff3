"""Settings of the embedded ClickHouse server (``modelgate clickhouse``)."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from infra.settings import CommonSettings

DEFAULT_PASSWORD_FILE = "default_password"
"""Name, in the server's data directory, of the file holding the ``default`` user's password."""


class ClickHouseUser(BaseModel):
    """A user of the embedded server; read-only users are served on ``readonly = 1`` connections
    of their own bounded share, and only reading statements pass (``access.py``)."""

    name: str
    password: str = ""
    """Empty only for ``default``, whose password is then generated into the data directory."""
    readonly: bool = False


def _default_users() -> list[ClickHouseUser]:
    return [
        ClickHouseUser(name="default", password="", readonly=False),
        ClickHouseUser(name="analyst", password="analyst", readonly=True),
    ]


def ensure_default_password(data_dir: Path) -> str:
    """The ``default`` user's password kept in ``data_dir``, generated (mode 0600) on first use.

    The server and the local services (``modelgate up``, the tests) call this with the same data
    directory, so whichever comes first creates it; a concurrent second caller reads it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DEFAULT_PASSWORD_FILE
    if not path.exists():
        temporary = data_dir / f".{DEFAULT_PASSWORD_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24) + "\n")
            os.link(temporary, path)  # atomic, and fails if another caller won the race
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    password = path.read_text().strip()
    if not password:
        raise ValueError(f"{path} is empty: delete it to have a new password generated")
    return password


class ClickHouseServerSettings(CommonSettings):
    """Where the embedded server listens, where it keeps data, who may use it."""

    clickhouse_server_host: str = "127.0.0.1"
    """Interface to bind; loopback by default."""

    clickhouse_server_port: int = 8123
    """HTTP port (ClickHouse's own default)."""

    clickhouse_server_data_dir: Path = Field(default_factory=lambda: Path(".modelgate/clickhouse"))
    """Directory of the engine's databases and tables; data survives restarts."""

    clickhouse_server_users: list[ClickHouseUser] = Field(default_factory=_default_users)
    """Users (JSON in MODELGATE_CLICKHOUSE_SERVER_USERS): name, password, readonly."""

    clickhouse_server_default_password: str = ""
    """Password of ``default``; empty: generated into ``<data dir>/default_password`` (0600)."""

    clickhouse_server_max_connections: int = 8
    """Engine connections of writable users (the services): statements that run at once."""

    clickhouse_server_analyst_connections: int = 2
    """Engine connections of read-only users, apart from the services' own: at most this many
    analyst statements run at once, so analysts never take the services' connections."""

    clickhouse_server_analyst_queue_timeout_s: float = 30.0
    """How long an analyst statement waits for one of the analysts' connections before it is
    refused with TOO_MANY_SIMULTANEOUS_QUERIES (202)."""

    clickhouse_server_analyst_max_execution_time: int = 60
    """Seconds an analyst statement may run (TIMEOUT_EXCEEDED after); readonly users cannot
    change it."""

    clickhouse_server_analyst_max_threads: int = 2
    """Threads one analyst statement may use."""

    clickhouse_server_analyst_max_memory_usage: int = 2_000_000_000
    """Bytes of memory one analyst statement may use."""

    clickhouse_server_analyst_max_result_rows: int = 10_000_000
    """Rows one analyst result may have (more: page with LIMIT/OFFSET or aggregate)."""

    clickhouse_server_analyst_queue_limit: int = 32
    """Analyst statements that may wait for a connection; more are refused at once (202)."""

    clickhouse_server_max_body_bytes: int = 1 << 30
    """Largest request body accepted after decompression (inserts stream, so this bounds disk)."""

    clickhouse_server_display_name: str = Field(default_factory=socket.gethostname)
    """Sent as ``X-ClickHouse-Server-Display-Name``."""

    @field_validator("clickhouse_server_users")
    @classmethod
    def _passwords_required(cls, users: list[ClickHouseUser]) -> list[ClickHouseUser]:
        for user in users:
            if not user.password and user.name != "default":
                raise ValueError(f"user {user.name!r} needs a password")
        return users

    def analyst_engine_settings(self) -> dict[str, str]:
        """What every read-only connection is opened with (``readonly = 1`` fixes them)."""
        return {
            "max_execution_time": str(self.clickhouse_server_analyst_max_execution_time),
            "timeout_overflow_mode": "throw",
            "max_threads": str(self.clickhouse_server_analyst_max_threads),
            "max_memory_usage": str(self.clickhouse_server_analyst_max_memory_usage),
            "max_result_rows": str(self.clickhouse_server_analyst_max_result_rows),
            "result_overflow_mode": "throw",
        }

    def resolved_users(self) -> list[ClickHouseUser]:
        """The users with ``default``'s password filled in (generated on the first start)."""
        password = self.clickhouse_server_default_password or ensure_default_password(
            self.clickhouse_server_data_dir
        )
        return [
            user.model_copy(update={"password": password})
            if user.name == "default" and not user.password
            else user
            for user in self.clickhouse_server_users
        ]
