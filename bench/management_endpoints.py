"""Benchmark of the management API's monitoring endpoints over HTTP on 10 million events.

    .venv/bin/python -m bench.management_endpoints [--events 10000000] [--apis 100] [--runs 30]
                                                   [--clickhouse-url URL]

Same synthetic events as ``bench.monitoring_queries`` (inserted with ``INSERT ... SELECT``, the
materialized views fill the rollups), plus a metadata DB holding the ``--apis`` exported APIs of
one user. The whole app runs (real RabbitMQ namespace, SQLite metadata DB); each route is called
``--runs`` times in sequence through aiohttp with a bearer token, so figures include auth, the
metadata lookup, ClickHouse, and JSON encoding.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
from aiohttp.test_utils import TestClient, TestServer

from bench.metrics import start_clickhouse
from bench.monitoring_queries import CHUNK, insert_sql, timed
from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from infra.model_store import ModelStore
from infra.topology import Topology, delete_topology
from management_api.app import create_app
from management_api.catalog import Catalog
from management_api.datasets import load_dataset
from management_api.db import ExportedApi, User, create_engine, migrate, session_factory
from management_api.fitting import train
from management_api.queries import MonitoringQueries
from management_api.security import generate_api_key, hash_password
from management_api.settings import ManagementSettings


async def seed_metadata(settings: ManagementSettings, apis: int) -> None:
    """One user owning ``apis`` exported APIs whose ids match the synthetic events."""
    engine = create_engine(settings.database_url)
    await migrate(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        user = User(username="bench", password_hash=hash_password("bench-password"), role="user")
        session.add(user)
        await session.commit()
    frame, target, _ = load_dataset("iris")
    frame["target"] = target
    trained = train(frame, "target", "logistic_regression", {})
    catalog = Catalog(sessions, ModelStore(settings.model_store))
    model, version = await catalog.add_version(user.id, "iris", trained, "builtin:iris")
    async with sessions() as session:
        for i in range(apis):
            key = generate_api_key()
            session.add(
                ExportedApi(
                    id=f"api-{i}",
                    owner_id=user.id,
                    model_id=model.id,
                    model_version_id=version.id,
                    name=f"bench api {i}",
                    status="active",
                    key_hash=key.key_hash,
                    key_prefix=key.prefix,
                    rate_limit_per_minute=100,
                    log_payloads=True,
                    alert_thresholds={},
                )
            )
        await session.commit()
    await engine.dispose()


def report(name: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"{name:<50} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}")


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-management-"))
    server = None
    url = args.clickhouse_url
    if not url:
        server, url = start_clickhouse(workdir / "clickhouse")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    rabbitmq_url = os.environ.get("MODELGATE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    client = await create_async_client(url)
    try:
        await migrate_database(url, database)
        print(
            f"machine: {platform.node()}, {os.cpu_count()} CPU, load "
            f"{os.getloadavg()[0]:.2f}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        now = int(time.time())
        started = time.perf_counter()
        for offset in range(0, args.events, CHUNK):
            rows = min(CHUNK, args.events - offset)
            await client.command(insert_sql(database, args.apis, offset, rows, now))
        print(f"inserted {args.events:,} events in {time.perf_counter() - started:.1f}s")
        if args.optimize:
            started = time.perf_counter()
            for table in ("request_stats_1m", "request_stats_1h", "request_stats_1d"):
                with suppress(Exception):  # request_stats_1d exists from migration 0002 on
                    await client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
            print(f"merged the rollups (OPTIMIZE FINAL) in {time.perf_counter() - started:.1f}s")

        settings = ManagementSettings(
            database_url=f"sqlite+aiosqlite:///{workdir / 'meta.db'}",
            model_store=workdir / "models",
            management_data_dir=workdir / "data",
            management_admin_password="bench-admin-password",
            namespace=namespace,
            rabbitmq_url=rabbitmq_url,
            clickhouse_url=url,
            clickhouse_database=database,
        )
        await seed_metadata(settings, args.apis)
        http = TestClient(TestServer(create_app(settings)))
        await http.start_server()
        try:
            r = await http.post(
                "/api/auth/token", json={"username": "bench", "password": "bench-password"}
            )
            headers = {"Authorization": "Bearer " + (await r.json())["access_token"]}
            queries = MonitoringQueries(client, database)
            ids = [f"api-{i}" for i in range(args.apis)]
            direct = [
                (f"(direct) queries.summaries, {args.apis} APIs", lambda: queries.summaries(ids)),
                ("(direct) queries.api_stats 24h", lambda: queries.api_stats("api-7", "24h")),
                ("(direct) queries.api_stats 30d", lambda: queries.api_stats("api-7", "30d")),
            ]
            print(f"\n{'route':<50} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   ({args.runs} runs)")
            for name, call in direct:
                report(name, await timed(call, args.runs))
            routes = [
                "/api/monitoring/apis",
                "/api/exports?sort=requests&order=desc",
                "/api/monitoring/overview",
                "/api/monitoring/apis/api-7/stats?range=24h",
                "/api/monitoring/apis/api-7/stats?range=7d",
                "/api/monitoring/apis/api-7/stats?range=30d",
                "/api/monitoring/apis/api-7/timeseries?range=24h",
                "/api/monitoring/apis/api-7/alerts",
            ]
            for route in routes:

                async def get(route: str = route) -> None:
                    r = await http.get(route, headers=headers)
                    await r.read()
                    assert r.status == 200, (route, r.status, await r.text())

                report(route, await timed(get, args.runs))
        finally:
            await http.close()
    finally:
        with suppress(Exception):
            await client.command(f"DROP DATABASE IF EXISTS {database}")
        await client.close()
        with suppress(Exception):
            connection = await aio_pika.connect(rabbitmq_url)
            await delete_topology(await connection.channel(), Topology(namespace))
            await connection.close()
        if server is not None:
            server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.management_endpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--apis", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument(
        "--optimize", action="store_true", help="merge the rollups first (steady state)"
    )
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
