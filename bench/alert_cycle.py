"""Benchmark of one alert evaluation cycle (management_api/alert_engine.py): 1,000 APIs x 5 rules
over 10 million events.

    .venv/bin/python -m bench alert_cycle [--events 10000000] [--apis 1000] [--span-h 24]
                                          [--runs 20] [--clickhouse-url URL]

Synthetic request events over the last ``--span-h`` hours across ``--apis`` APIs are inserted
directly (the ``INSERT ... SELECT`` of ``bench.monitoring_queries``, spread over the span asked);
the materialized views fill the rollups. A SQLite metadata DB gets the APIs and 5 rules each (5xx
rate, p95 over 5 min, CPU and memory over 5 min, traffic drop over 10 min). Then
``AlertEngine.cycle()`` runs ``--runs`` times: read every rule, one ClickHouse query for every
API and window, the state machine, the DB writes and the publication of the transitions (to a
no-op publisher: the broker is not measured). Reported: p50/p95/max of the cycle and of its
ClickHouse query alone.
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

from bench.metrics import start_clickhouse
from bench.monitoring_queries import CHUNK, SPAN_S, insert_sql
from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from management_api.alert_engine import AlertEngine, read_figures
from management_api.db import (
    AlertRuleRow,
    ExportedApi,
    Model,
    ModelVersion,
    User,
    create_engine,
    migrate,
    session_factory,
)
from management_api.queries import MonitoringQueries
from schemas.alerts import AlertRuleKind, AlertTransition

RULES: list[tuple[AlertRuleKind, float, int]] = [
    (AlertRuleKind.ERROR_RATE_5XX, 0.05, 300),
    (AlertRuleKind.P95_MS, 500.0, 300),
    (AlertRuleKind.CPU_PERCENT, 80.0, 300),
    (AlertRuleKind.MEMORY_MB, 1024.0, 300),
    (AlertRuleKind.TRAFFIC_DROP, 0.5, 600),
]


def events_sql(db: str, apis: int, offset: int, rows: int, now: int, span_s: int) -> str:
    sql = insert_sql(db, apis, offset, rows, now)
    marker = f"({now} - {SPAN_S} *"
    assert marker in sql, "bench.monitoring_queries.insert_sql changed its time expression"
    return sql.replace(marker, f"({now} - {span_s} *")


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    server = None
    url = args.clickhouse_url
    if not url:
        server, url = start_clickhouse(workdir / "clickhouse")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    client = await create_async_client(url)
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'meta.db'}")
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
            await client.command(
                events_sql(database, args.apis, offset, rows, now, int(args.span_h * 3600))
            )
        took = time.perf_counter() - started
        print(
            f"inserted {args.events:,} events across {args.apis} APIs over {args.span_h:g} h in "
            f"{took:.1f}s ({args.events / took:,.0f} rows/s incl. materialized views)"
        )
        sizes = await client.query(
            "SELECT table, sum(rows), count() FROM system.parts WHERE database = "
            "{db:String} AND active AND table = 'request_stats_1m' GROUP BY table",
            parameters={"db": database},
        )
        for table, rows, parts in sizes.result_rows:
            print(f"  {table}: {rows:,} rows in {parts} parts")

        await migrate(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            user = User(username="bench", password_hash="x", role="user")
            session.add(user)
            await session.flush()
            model = Model(owner_id=user.id, name="bench", task="classification")
            session.add(model)
            await session.flush()
            version = ModelVersion(
                id="model-bench-v1",
                model_id=model.id,
                number=1,
                algorithm="logistic_regression",
                params={},
                metrics={},
                features=[],
                classes=None,
                target="y",
                n_train=1,
                n_test=1,
                source="bench",
            )
            session.add(version)
            await session.flush()
            for i in range(args.apis):
                api_id = f"api-{i}"
                session.add(
                    ExportedApi(
                        id=api_id,
                        owner_id=user.id,
                        model_id=model.id,
                        model_version_id=version.id,
                        name=api_id,
                        status="active",
                        key_hash=uuid.uuid4().hex,
                        key_prefix="mg_bench",
                        rate_limit_per_minute=100,
                        log_payloads=False,
                        alert_thresholds={},
                    )
                )
            await session.flush()  # the APIs before their rules (no ORM relationship)
            for i in range(args.apis):
                api_id = f"api-{i}"
                for position, (kind, threshold, window_s) in enumerate(RULES):
                    session.add(
                        AlertRuleRow(
                            api_id=api_id,
                            kind=kind.value,
                            threshold=threshold,
                            window_s=window_s,
                            for_s=60,
                            min_requests=20,
                            enabled=True,
                            position=position,
                            state="ok",
                        )
                    )
            await session.commit()

        published: list[AlertTransition] = []

        async def publish(transition: AlertTransition) -> None:
            published.append(transition)

        queries = MonitoringQueries(client, database)

        async def connect() -> MonitoringQueries:
            return queries

        alerts = AlertEngine(sessions, connect, publish, 15.0)
        cycles: list[float] = []
        reports = []
        for _ in range(args.runs + 1):  # the first one warms up
            started = time.perf_counter()
            reports.append(await alerts.cycle())
            cycles.append((time.perf_counter() - started) * 1000)
        cycles = cycles[1:]
        api_ids = [f"api-{i}" for i in range(args.apis)]
        windows = sorted({w for _, _, w in RULES})
        query_ms: list[float] = []
        for _ in range(args.runs):
            started = time.perf_counter()
            figures = await read_figures(queries, api_ids, windows, datetime.now(UTC))
            query_ms.append((time.perf_counter() - started) * 1000)
        print(
            f"\n{args.apis} APIs x {len(RULES)} rules = {reports[-1].rules} rules; "
            f"{len(figures)} (api, window) figures; transitions in the first cycle: "
            f"{reports[0].transitions}, later: {sum(r.transitions for r in reports[1:])}"
        )
        print(f"{'':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   ({args.runs} runs)")
        for name, times in (("evaluation cycle", cycles), ("its ClickHouse query", query_ms)):
            times = sorted(times)
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            print(f"{name:<28} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}")
    finally:
        with suppress(Exception):
            await client.command(f"DROP DATABASE IF EXISTS {database}")
        await client.close()
        await engine.dispose()
        if server is not None:
            server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench alert_cycle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--apis", type=int, default=1000)
    parser.add_argument("--span-h", type=float, default=24.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--clickhouse-url", default="")
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
