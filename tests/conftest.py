"""Fixtures giving each test real services and its own namespace on them (STYLE.md, Tests)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import clickhouse_connect
import pytest
from aio_pika.abc import AbstractRobustConnection

from infra.topology import DeclaredTopology, Topology, declare_topology, delete_topology
from tests.services import CLICKHOUSE_HOWTO, EmbeddedClickHouse, find_rabbitmq
from tests.teardown import bounded

SLOWEST_FILES_FIRST = (
    "tests/integration/test_supervisor.py",
    "tests/e2e/test_dashboard.py",
    "tests/e2e/test_management_stack.py",
    "tests/integration/test_metrics_pipeline.py",
    "tests/e2e/test_schemathesis.py",
    "tests/integration/test_training_limits.py",
    "tests/e2e/test_traffic_panel.py",
    "tests/e2e/test_alerts_page.py",
    "tests/e2e/test_live_charts.py",
    "tests/e2e/test_issue11_xss.py",
    "tests/e2e/test_drift_tab.py",
)
"""Files that take longest (``--durations``), run first: ``make test`` hands whole files to two
workers (``--dist loadfile --no-loadscope-reorder``, in the order collected). By default xdist
orders files by their number of tests, which put these last, where one of them can leave a worker
alone at the end of the run."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOWEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """AMQP URL of a real RabbitMQ (environment, local service, or testcontainers)."""
    url, container = find_rabbitmq()
    yield url
    if container is not None:
        container.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HTTP URL of a real ClickHouse: MODELGATE_TEST_CLICKHOUSE_URL, else an embedded server."""
    url = os.environ.get("MODELGATE_TEST_CLICKHOUSE_URL")
    if url:
        yield url
        return
    server = EmbeddedClickHouse(tmp_path_factory.mktemp("clickhouse") / "data")
    server.start()
    yield server.url
    server.stop()


async def delete_namespaces(rabbitmq_url: str, namespaces: list[str]) -> None:
    """Delete every queue and exchange of these namespaces (those absent are skipped)."""
    connection = await aio_pika.connect_robust(rabbitmq_url)
    try:
        for name in namespaces:
            channel = await connection.channel()
            await delete_topology(channel, Topology(name))
            await channel.close()
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def used_namespaces(rabbitmq_url: str) -> Iterator[list[str]]:
    """Namespaces handed out in this run; all deleted from the broker when the run ends.

    A test's own teardown deletes its namespace too, but processes it started (predictors,
    consumers, whole stacks) may declare it again on their way out; left behind, each run added a
    few dozen durable queues and exchanges to the broker that CI shares with the session.
    """
    names: list[str] = []
    yield names
    if names:
        asyncio.run(delete_namespaces(rabbitmq_url, names))


@pytest.fixture
def namespace(used_namespaces: list[str]) -> str:
    """A fresh broker namespace (queue and exchange prefix) for one test."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    used_namespaces.append(name)
    return name


@pytest.fixture
def topology_names(namespace: str) -> Topology:
    return Topology(namespace)


@pytest.fixture
async def amqp(
    rabbitmq_url: str, topology_names: Topology
) -> AsyncIterator[AbstractRobustConnection]:
    """A connection to the real broker; the test's namespace is deleted afterwards."""
    connection = await aio_pika.connect_robust(rabbitmq_url)
    yield connection

    async def clean_up() -> None:
        channel = await connection.channel()
        await delete_topology(channel, topology_names)

    try:
        await bounded(clean_up(), "delete the test's broker namespace")
    finally:
        await bounded(connection.close(), "close the test's broker connection")


@pytest.fixture
async def topology(amqp: AbstractRobustConnection, topology_names: Topology) -> DeclaredTopology:
    """The namespace's topology, declared on the real broker."""
    channel = await amqp.channel(publisher_confirms=True)
    return await declare_topology(channel, topology_names)


@pytest.fixture
def ch_database(clickhouse_server: str) -> Iterator[str]:
    """A fresh ClickHouse database for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        client = clickhouse_connect.get_client(dsn=clickhouse_server)
    except Exception as exc:  # pragma: no cover - the message is the point
        pytest.fail(
            f"cannot connect to ClickHouse at {clickhouse_server}: {exc}\n{CLICKHOUSE_HOWTO}"
        )
    client.command(f"CREATE DATABASE {name}")
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name}")
    client.close()


@pytest.fixture
def model_store(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


pytest_plugins = ["tests.stack", "tests.prediction_fixtures", "tests.management_support"]
