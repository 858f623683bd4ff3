"""Benchmark of the embedded ClickHouse server: do concurrent queries run in parallel?

Runs a CPU-heavy single-threaded query alone, then 2 (and 4) copies at once from separate
clients, and reports wall times; with parallel execution two copies take about the time of one
(on a machine with at least two free cores). Also reports small-query latency and insert speed.

    .venv/bin/python -m bench.clickhouse_concurrency [--url http://default:PASSWORD@127.0.0.1:8123/]

Without --url a fresh server is started on a temporary directory and stopped afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.metrics import start_clickhouse
from infra.clickhouse import create_client

HEAVY = (
    "SELECT count() FROM numbers({rows}) WHERE sipHash64(toString(number)) % 7 = 1 "
    "SETTINGS max_threads = 1"
)


def timed_parallel(url: str, copies: int, work: Callable[[object], object]) -> float:
    clients = [create_client(url) for _ in range(copies)]
    barrier = threading.Barrier(copies + 1)

    def run(client: object) -> None:
        barrier.wait()
        work(client)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in clients:
        c.close()  # type: ignore[attr-defined]
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench clickhouse_concurrency", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", help="server to measure (default: start a fresh one)")
    parser.add_argument(
        "--rows", type=int, default=40_000_000, help="rows scanned by the heavy query"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    process = None
    tmp = tempfile.TemporaryDirectory()
    url = args.url
    if url is None:
        process, url = start_clickhouse(Path(tmp.name) / "data")
    try:
        heavy = HEAVY.format(rows=args.rows)
        client = create_client(url)
        client.query(heavy)  # warm up

        def one(c: object) -> object:
            return c.query(heavy)  # type: ignore[attr-defined]

        results: dict[int, float] = {}
        for copies in (1, 2, 4):
            results[copies] = statistics.median(
                timed_parallel(url, copies, one) for _ in range(args.repeat)
            )

        latencies = []
        for _ in range(300):
            start = time.perf_counter()
            client.query("SELECT 1")
            latencies.append((time.perf_counter() - start) * 1000)

        client.command("CREATE DATABASE IF NOT EXISTS bench")
        client.command("DROP TABLE IF EXISTS bench.ins")
        client.command(
            "CREATE TABLE bench.ins (id UInt64, ts DateTime64(3), v Float32, "
            "tag LowCardinality(String)) ENGINE = MergeTree ORDER BY id"
        )
        n = 1_000_000
        columns = [
            np.arange(n, dtype=np.uint64),
            np.full(n, datetime.now(UTC)),
            np.random.default_rng(1).random(n, dtype=np.float32),
            [f"api{i % 20}" for i in range(n)],
        ]
        start = time.perf_counter()
        client.insert(
            "bench.ins", columns, column_names=["id", "ts", "v", "tag"], column_oriented=True
        )
        insert_s = time.perf_counter() - start
        client.command("DROP DATABASE bench")
        client.close()
    finally:
        if process is not None:
            process.stop()
        tmp.cleanup()

    cpu = platform.machine()
    with suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next(
            (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu
        )
    print(
        f"machine: {platform.node()} {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"heavy query ({args.rows:,} rows, max_threads=1), median of {args.repeat}:")
    for copies, elapsed in results.items():
        print(f"  {copies} at once: {elapsed:.2f} s wall ({elapsed / results[1]:.2f}x one)")
    p50 = statistics.median(latencies)
    p99 = sorted(latencies)[int(len(latencies) * 0.99) - 1]
    print(
        f"SELECT 1 round trip (clickhouse-connect, sequential): p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    print(
        f"insert 1,000,000 rows (4 columns, Native, lz4): {insert_s:.2f} s "
        f"= {n / insert_s:,.0f} rows/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
