"""How tests find real services: URL from the environment, else the local service, else
testcontainers where Docker runs; when none can be had, fail loudly saying how to get one."""

from __future__ import annotations

import os
import shutil
import subprocess
from urllib.parse import urlparse

import pytest

from infra.localnet import EmbeddedClickHouseProcess, port_open
from infra.localnet import free_port as free_port  # tests import it from here

RABBITMQ_HOWTO = (
    "RabbitMQ is needed by this test and none could be reached.\n"
    "  - set MODELGATE_TEST_RABBITMQ_URL=amqp://user:pass@host:5672/ to use one, or\n"
    "  - start the local one: `rabbitmq-server -detached` (Debian package rabbitmq-server;\n"
    "    `make test` installs and starts it), or\n"
    "  - run a Docker engine so testcontainers can start rabbitmq:3-management."
)

CLICKHOUSE_HOWTO = (
    "ClickHouse is needed by this test and none could be had.\n"
    "  - set MODELGATE_TEST_CLICKHOUSE_URL=http://user:pass@host:8123/ to use a server, or\n"
    "  - make sure the embedded server starts: `.venv/bin/modelgate clickhouse --port 8123`\n"
    "    (needs the chdb-core package; `make test` installs it)."
)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_rabbitmq() -> tuple[str, object | None]:
    """An AMQP URL and, when testcontainers started one, the container to stop at the end."""
    url = os.environ.get("MODELGATE_TEST_RABBITMQ_URL") or os.environ.get("MODELGATE_RABBITMQ_URL")
    if url:
        parsed = urlparse(url)
        if not port_open(parsed.hostname or "127.0.0.1", parsed.port or 5672, timeout=3):
            pytest.fail(
                f"RabbitMQ at {url} (from the environment) is not reachable.\n{RABBITMQ_HOWTO}"
            )
        return url, None
    if port_open("127.0.0.1", 5672):
        return "amqp://guest:guest@127.0.0.1:5672/", None
    if docker_available():
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3-management")
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        return f"amqp://guest:guest@{host}:{port}/", container
    pytest.fail(RABBITMQ_HOWTO)


class EmbeddedClickHouse(EmbeddedClickHouseProcess):
    """``infra.localnet``'s embedded ClickHouse child, failing the test (with how to get one)
    when it does not start."""

    def start(self, timeout: float = 60.0) -> None:
        try:
            super().start(timeout)
        except RuntimeError as exc:
            pytest.fail(f"{exc}\n{CLICKHOUSE_HOWTO}")


def close_connections_named(name: str) -> int:
    """Close, on the broker side, every connection whose client gave this name."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        pytest.fail("rabbitmqctl is needed to drop a connection (Debian package rabbitmq-server)")
    listing = subprocess.run(
        [rabbitmqctl, "-q", "list_connections", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    closed = 0
    for line in listing.splitlines():
        pid, _, properties = line.partition("\t")
        if f'{{"connection_name","{name}"}}' in properties:
            subprocess.run(
                [rabbitmqctl, "-q", "close_connection", pid.strip(), "test: broker away"],
                capture_output=True,
                timeout=60,
                check=True,
            )
            closed += 1
    return closed
