"""Local processes and ports: free and taken ports, and the embedded ClickHouse as a child process.

The one home of these helpers for ``modelgate up``, the tests' fixtures and the benches, so each
does not carry its own copy.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

from infra.clickhouse_server.settings import ensure_default_password
from infra.settings import with_credentials


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's pick on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_taken(host: str, port: int) -> bool:
    """Whether a server could not listen on ``host:port`` now (another program holds it).

    Binds as a server would (``SO_REUSEADDR``, so sockets in TIME_WAIT do not count), and also
    tries to connect on loopback: a listener on 127.0.0.1 blocks a later bind on 0.0.0.0 and the
    other way round.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    loopback = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    return port_open(loopback, port, timeout=0.3)


class EmbeddedClickHouseProcess:
    """A ``modelgate clickhouse`` child on ``port`` with its own data directory.

    Its ``default`` user has the password generated into the data directory (as ``modelgate up``
    does); ``url`` carries it: ``http://default:<password>@127.0.0.1:<port>/``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_path or data_dir.parent / f"clickhouse-{self.port}.log"
        self.password = self.extra_env.get(
            "MODELGATE_CLICKHOUSE_SERVER_DEFAULT_PASSWORD"
        ) or ensure_default_password(data_dir)

    @property
    def url(self) -> str:
        """URL of the server as the services use it (user ``default`` and its password)."""
        return with_credentials(f"http://127.0.0.1:{self.port}/", "default", self.password)

    @property
    def analyst_url(self) -> str:
        """URL of the server as the read-only analyst (``analyst``/``analyst``)."""
        return with_credentials(f"http://127.0.0.1:{self.port}/", "analyst", "analyst")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout: float = 60.0) -> None:
        """Start it and wait until ``/ping`` answers; ``RuntimeError`` saying why if it does not."""
        env = {**os.environ, **self.extra_env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log: IO[bytes] = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "infra.clickhouse_server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the embedded ClickHouse exited with {self.process.returncode}; "
                    f"log: {self.log_path}\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"the embedded ClickHouse did not answer /ping in {timeout:.0f}s; log: {self.log_path}"
        )

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
