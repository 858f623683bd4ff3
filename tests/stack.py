"""The whole product as ``modelgate up`` runs it, for end-to-end tests.

Started through ``modelgate.stack.StackProcess``, the same code the benches use. One stack per test
session (starting six processes costs seconds on two cores): a fresh broker
namespace, a fresh ClickHouse database on the session's ClickHouse, its own ports, metadata DB and
model store. Tests create their own users, models and APIs, so they do not see each other's.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import clickhouse_connect
import pytest

from infra.localnet import free_port, port_open
from infra.topology import Topology, delete_topology
from modelgate.stack import StackProcess


@dataclass
class Stack:
    """Where the running stack answers, and the first admin's credentials."""

    management_url: str
    ingress_url: str
    clickhouse_url: str
    clickhouse_database: str
    namespace: str
    rabbitmq_url: str
    admin_username: str
    admin_password: str
    model_store: Path
    data_dir: Path
    log_path: Path

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _free_port_pair() -> int:
    for _ in range(50):
        port = free_port()
        if not port_open("127.0.0.1", port + 1):
            return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="session")
def stack(
    rabbitmq_url: str,
    clickhouse_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    used_namespaces: list[str],
) -> Iterator[Stack]:
    """Run ``modelgate up`` for the session and yield where it answers."""
    root = tmp_path_factory.mktemp("stack")
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    used_namespaces.append(namespace)
    database = f"stack_{uuid.uuid4().hex[:10]}"
    ingress_port, management_port = free_port(), free_port()
    predictor_port, consumer_port = _free_port_pair(), free_port()
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "MODELGATE_NAMESPACE": namespace,
        "MODELGATE_RABBITMQ_URL": rabbitmq_url,
        "MODELGATE_CLICKHOUSE_URL": clickhouse_server,
        "MODELGATE_CLICKHOUSE_DATABASE": database,
        "MODELGATE_MODEL_STORE": str(root / "models"),
        "MODELGATE_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'modelgate.db'}",
        "MODELGATE_STACK_DATA_DIR": str(root),
        "MODELGATE_INGRESS_PORT": str(ingress_port),
        "MODELGATE_MANAGEMENT_PORT": str(management_port),
        "MODELGATE_PREDICTOR_METRICS_PORT": str(predictor_port),
        "MODELGATE_CONSUMER_METRICS_PORT": str(consumer_port),
        "MODELGATE_PUBLIC_INGRESS_URL": f"http://127.0.0.1:{ingress_port}",
        "MODELGATE_MANAGEMENT_ADMIN_USERNAME": "admin",
        "MODELGATE_MANAGEMENT_ADMIN_PASSWORD": password,
        "MODELGATE_CONSUMER_FLUSH_INTERVAL_S": "0.5",
        # Every e2e test logs in from 127.0.0.1; schemathesis sends bad logins on purpose. The
        # per-address budget is for attackers, not for one shared test client.
        "MODELGATE_MANAGEMENT_LOGIN_FAILURES_PER_ADDRESS": "100000",
    }
    up = StackProcess(env, root)
    try:
        ready = up.start(timeout=300)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    result = Stack(
        management_url=f"http://127.0.0.1:{management_port}",
        ingress_url=f"http://127.0.0.1:{ingress_port}",
        clickhouse_url=clickhouse_server,
        clickhouse_database=database,
        namespace=namespace,
        rabbitmq_url=rabbitmq_url,
        admin_username="admin",
        admin_password=password,
        model_store=root / "models",
        data_dir=root,
        log_path=up.log_path,
    )
    assert ready["namespace"] == namespace
    try:
        yield result
    finally:
        up.stop(timeout=90)
        asyncio.run(_delete_namespace(rabbitmq_url, namespace))
        client = clickhouse_connect.get_client(dsn=clickhouse_server)
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()


async def _delete_namespace(url: str, namespace: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        await delete_topology(await connection.channel(), Topology(namespace))
    finally:
        await connection.close()
