"""Benchmark of the monitoring queries (management_api/monitoring_sql.py) on 10 million events.

    .venv/bin/python -m bench monitoring_queries [--events 10000000] [--apis 100] [--runs 30]
                                                 [--clickhouse-url URL]

Synthetic request events over the last 30 days across ``--apis`` APIs are inserted directly
(``INSERT ... SELECT`` from ``numbers()`` through clickhouse-connect, not through the broker);
the materialized views fill the rollups as in production. Each query of the management API's
monitoring routes then runs ``--runs`` times in sequence; p50/p95/max wall times are reported,
measured at the client (HTTP round trip and parsing included).
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
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.metrics import start_clickhouse
from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from management_api.queries import MonitoringQueries

CHUNK = 1_000_000
SPAN_S = 30 * 86_400


def insert_sql(db: str, apis: int, offset: int, rows: int, now: int) -> str:
    return f"""
INSERT INTO {db}.request_events
    (event_id, batch_id, ts, api_id, model_version, status_code, error_code, total_ms, queue_ms,
     inference_ms, batch_size, rows, request_bytes, response_bytes, cpu_ms, worker_id,
     worker_rss_mb, ingress_id, key_prefix, prediction, input, output)
SELECT
    lower(hex(MD5(toString(number)))) AS event_id,
    concat('batch-', toString(intDiv(number, 500))) AS batch_id,
    fromUnixTimestamp64Milli(toInt64(({now} - {SPAN_S} * (number % 1000003) / 1000003) * 1000),
                             'UTC') AS ts,
    concat('api-', toString(number % {apis})) AS api_id,
    concat('model-', toString(number % {apis}), '-v1') AS model_version,
    multiIf(rand(1) % 100 < 95, 200, rand(1) % 100 < 98, 400, 500) AS status_code,
    if(status_code = 200, '', 'E') AS error_code,
    exp(randNormal(2.5, 0.9)) AS total_ms,
    0.2 AS queue_ms,
    total_ms * 0.6 AS inference_ms,
    32 AS batch_size,
    1 AS rows,
    120 AS request_bytes,
    60 AS response_bytes,
    0.3 AS cpu_ms,
    concat('worker-', toString(number % 4)) AS worker_id,
    200 + number % 50 AS worker_rss_mb,
    'ingress-1' AS ingress_id,
    'mg_abcd' AS key_prefix,
    'setosa' AS prediction,
    '{{"sepal_length": 5.1, "petal_length": 1.4}}' AS input,
    '{{"prediction": "setosa"}}' AS output
FROM numbers({offset}, {rows})
"""


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    await fn()  # warm-up (first run loads marks and caches)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    server = None
    url = args.clickhouse_url
    if not url:
        server, url = start_clickhouse(workdir / "clickhouse")
    database = f"bench_{uuid.uuid4().hex[:8]}"
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
        took = time.perf_counter() - started
        await client.command(
            f"INSERT INTO {database}.worker_samples (ts, worker_id, cpu_percent, rss_mb, "
            "loaded_models) SELECT now64(3) - number * 5, concat('worker-', "
            "toString(number % 4)), 20 + number % 30, 200 + number % 50, "
            f"[concat('model-', toString(number % {args.apis}), '-v1')] FROM numbers(20000)"
        )
        print(
            f"inserted {args.events:,} events across {args.apis} APIs over 30 days in "
            f"{took:.1f}s ({args.events / took:,.0f} rows/s incl. materialized views)"
        )
        await measure(client, database, args)
        if args.optimize:
            started = time.perf_counter()
            for table in ("request_stats_1m", "request_stats_1h", "request_stats_1d"):
                await client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
            print(
                f"\nrollups merged (OPTIMIZE FINAL, {time.perf_counter() - started:.1f}s), "
                "as background merges leave them in steady state:"
            )
            await measure(client, database, args)
    finally:
        with suppress(Exception):
            await client.command(f"DROP DATABASE IF EXISTS {database}")
        await client.close()
        if server is not None:
            server.stop()


async def measure(client: Any, database: str, args: argparse.Namespace) -> None:
    """Sizes of the rollups, then each query ``args.runs`` times (after one warm-up run)."""
    sizes = await client.query(
        "SELECT table, sum(rows), count() FROM system.parts WHERE database = "
        "{db:String} AND active AND table LIKE 'request_stats%' GROUP BY table ORDER BY table",
        parameters={"db": database},
    )
    for table, rows, parts in sizes.result_rows:
        print(f"  {table}: {rows:,} rows in {parts} parts")
    queries = MonitoringQueries(client, database)
    api_ids = [f"api-{i}" for i in range(args.apis)]
    api, model = "api-7", ["model-7-v1"]
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("overview (100 APIs)", lambda: queries.overview(api_ids)),
        ("summaries (100 APIs)", lambda: queries.summaries(api_ids)),
        ("api_stats 24h", lambda: queries.api_stats(api, "24h", model)),
        ("api_stats 7d", lambda: queries.api_stats(api, "7d", model)),
        ("api_stats 30d", lambda: queries.api_stats(api, "30d", model)),
        ("time_series 24h/minute", lambda: queries.time_series(api, "24h", "minute")),
        ("time_series 7d/hour", lambda: queries.time_series(api, "7d", "hour")),
        ("time_series 30d/day", lambda: queries.time_series(api, "30d", "day")),
        ("request_history page 1", lambda: queries.request_history(api, 1, 50)),
        ("request_history page 20, 5xx", lambda: queries.request_history(api, 20, 50, "5xx")),
        ("slowest_requests 24h", lambda: queries.slowest_requests(api, "24h", 10)),
        ("resources 24h", lambda: queries.resources(api, "24h", model)),
    ]
    print(f"\n{'query':<32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   ({args.runs} runs)")
    for name, fn in cases:
        times = sorted(await timed(fn, args.runs))
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{name:<32} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench monitoring_queries",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--apis", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="measure again after merging the rollups (OPTIMIZE FINAL)",
    )
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
