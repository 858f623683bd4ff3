"""Benchmark of the metrics pipeline: one consumer process draining RabbitMQ into ClickHouse.

    .venv/bin/python -m bench metrics [--events 1000000] [--rate 20000] [--seconds 30]
                                      [--clickhouse-url URL] [--rabbitmq-url URL]

1. Backlog: ``--events`` request events (500 per message, as ingress batches them) wait in the
   queue before one ``modelgate metrics-consumer`` process starts; reports events/s sustained
   until all are stored, the consumer's peak RSS, and checks count() = uniqExact(event_id).
2. Steady state: events published at ``--rate`` per second for ``--seconds`` with ``ts`` = the
   publish time; the end-to-end lag of each event is ClickHouse's ``inserted_at - ts``.

Without --clickhouse-url a fresh embedded server is started on a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import psutil

from infra.clickhouse import create_async_client
from infra.localnet import EmbeddedClickHouseProcess, free_port
from infra.migrate import migrate_database
from infra.topology import REQUEST_EVENTS_KEY, Topology, declare_topology, delete_topology

EVENTS_PER_MESSAGE = 500
APIS = [f"bench-api-{i}" for i in range(20)]


def start_clickhouse(data_dir: Path) -> tuple[EmbeddedClickHouseProcess, str]:
    """A fresh embedded ClickHouse on a free port (``infra.localnet``) and its service URL."""
    server = EmbeddedClickHouseProcess(data_dir, log_path=data_dir.parent / "clickhouse.log")
    try:
        server.start()
    except RuntimeError as exc:
        raise SystemExit(f"the embedded ClickHouse did not start: {exc}") from exc
    return server, server.url


def batch_body(rng: random.Random, count: int, ts: float | None = None) -> tuple[str, bytes]:
    """One RequestEventBatch as ingress would publish it (JSON built directly, for speed)."""
    batch_id = uuid.uuid4().hex
    now = ts if ts is not None else time.time()
    iso = datetime.fromtimestamp(now, UTC).isoformat()
    events = []
    for i in range(count):
        total = rng.lognormvariate(2.3, 0.8)
        events.append(
            {
                "event_id": uuid.uuid4().hex,
                "ts": iso,
                "api_id": APIS[i % len(APIS)],
                "model_version": "bench-model-1",
                "status_code": 200 if rng.random() < 0.97 else 500,
                "total_ms": total,
                "queue_ms": 0.3,
                "inference_ms": total * 0.5,
                "batch_size": 32,
                "rows": 1,
                "request_bytes": 120,
                "response_bytes": 60,
                "cpu_ms": 0.2,
                "worker_id": f"worker-{i % 4}",
                "worker_rss_mb": 210.0,
                "ingress_id": "bench-ingress",
                "key_prefix": "mg_abcd",
                "prediction": "setosa",
                "input": '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}',
                "output": '{"prediction": "setosa"}',
            }
        )
    body = orjson.dumps(
        {"schema_version": 1, "batch_id": batch_id, "ingress_id": "bench", "events": events}
    )
    return batch_id, body


async def publish_backlog(exchange: Any, total: int) -> float:
    rng = random.Random(1)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        group = []
        for _ in range(20):
            if sent >= total:
                break
            count = min(EVENTS_PER_MESSAGE, total - sent)
            group.append(batch_body(rng, count))
            sent += count
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        body, message_id=batch_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                    ),
                    routing_key=REQUEST_EVENTS_KEY,
                )
                for batch_id, body in group
            )
        )
    return time.perf_counter() - started


async def publish_steady(exchange: Any, rate: int, seconds: float) -> int:
    """Publish ``rate`` events/s in messages of 500, ts = publish time; returns events sent."""
    rng = random.Random(2)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        due = started + sent / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        batch_id, body = batch_body(rng, EVENTS_PER_MESSAGE)
        await exchange.publish(
            aio_pika.Message(
                body, message_id=batch_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            routing_key=REQUEST_EVENTS_KEY,
        )
        sent += EVENTS_PER_MESSAGE
    return sent


class Consumer:
    def __init__(
        self, namespace: str, clickhouse_url: str, database: str, rabbitmq_url: str, log_path: Path
    ) -> None:
        env = {
            **os.environ,
            "MODELGATE_NAMESPACE": namespace,
            "MODELGATE_CLICKHOUSE_URL": clickhouse_url,
            "MODELGATE_CLICKHOUSE_DATABASE": database,
            "MODELGATE_RABBITMQ_URL": rabbitmq_url,
            "MODELGATE_CONSUMER_METRICS_PORT": str(free_port()),
        }
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelgate.cli", "metrics-consumer"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.ps = psutil.Process(self.process.pid)
        self.peak_rss = 0

    def sample(self) -> None:
        with suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def count(client: Any, db: str) -> int:
    result = await client.query(f"SELECT count() FROM {db}.request_events")
    return int(result.result_rows[0][0])


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    server = None
    url = args.clickhouse_url
    if not url:
        server, url = start_clickhouse(workdir / "clickhouse")
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    database = f"bench_{uuid.uuid4().hex[:8]}"
    names = Topology(namespace)
    connection = await aio_pika.connect_robust(args.rabbitmq_url)
    client = await create_async_client(url)
    consumer: Consumer | None = None
    try:
        channel = await connection.channel(publisher_confirms=True)
        topology = await declare_topology(channel, names)
        await migrate_database(url, database)
        machine = f"{platform.node()}, {os.cpu_count()} CPU, load {os.getloadavg()[0]:.2f}"
        print(f"machine: {machine}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")

        # 1. Backlog.
        took = await publish_backlog(topology.events, args.events)
        messages = -(-args.events // EVENTS_PER_MESSAGE)
        print(
            f"backlog: {args.events:,} events in {messages:,} messages published in {took:.1f}s, "
            "waiting in the queue before the consumer starts"
        )
        consumer = Consumer(namespace, url, database, args.rabbitmq_url, workdir / "consumer.log")
        started = time.perf_counter()
        while True:
            consumer.sample()
            stored = await count(client, database)
            if stored >= args.events:
                break
            if time.perf_counter() - started > 900:
                raise SystemExit(f"only {stored} of {args.events} stored after 900s")
            await asyncio.sleep(0.25)
        elapsed = time.perf_counter() - started
        result = await client.query(
            f"SELECT count(), uniqExact(event_id), "
            f"dateDiff('millisecond', min(inserted_at), max(inserted_at)) "
            f"FROM {database}.request_events"
        )
        total, unique, insert_span_ms = result.result_rows[0]
        print(
            f"backlog drained: {total:,} rows, {unique:,} unique, in {elapsed:.1f}s wall from "
            f"consumer start = {total / elapsed:,.0f} events/s (incl. start-up); "
            f"first to last insert {insert_span_ms / 1000:.1f}s = "
            f"{total / max(insert_span_ms / 1000, 1e-3):,.0f} events/s; "
            f"consumer peak RSS {consumer.peak_rss / 2**20:.0f} MB"
        )

        # 2. Steady state.
        await client.command(f"TRUNCATE TABLE {database}.request_events")
        sampler_stop = asyncio.Event()

        async def sampler() -> None:
            while not sampler_stop.is_set():
                consumer.sample()
                await asyncio.sleep(0.25)

        sampling = asyncio.create_task(sampler())
        steady_started = datetime.now(UTC)
        sent = await publish_steady(topology.events, args.rate, args.seconds)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await count(client, database) >= sent:
                break
            await asyncio.sleep(0.25)
        sampler_stop.set()
        await sampling
        warm = steady_started.timestamp() + min(5.0, args.seconds / 4)
        lag = await client.query(
            "SELECT count(), quantiles(0.5, 0.95, 0.99)(lag), max(lag) FROM ("
            f"SELECT dateDiff('millisecond', ts, inserted_at) AS lag FROM {database}.request_events"
            " WHERE ts >= fromUnixTimestamp64Milli({warm:Int64}, 'UTC'))",
            parameters={"warm": int(warm * 1000)},
        )
        n, q, worst = lag.result_rows[0]
        print(
            f"steady state: {sent:,} events at {args.rate:,}/s for {args.seconds:.0f}s; "
            f"after {warm - steady_started.timestamp():.0f}s warm-up, lag (inserted_at - ts) "
            f"over {n:,} events: p50 {q[0] / 1000:.2f}s, p95 {q[1] / 1000:.2f}s, "
            f"p99 {q[2] / 1000:.2f}s, max {worst / 1000:.2f}s; "
            f"consumer peak RSS {consumer.peak_rss / 2**20:.0f} MB"
        )
    finally:
        if consumer is not None:
            consumer.stop()
        with suppress(Exception):
            await client.command(f"DROP DATABASE IF EXISTS {database}")
        await client.close()
        with suppress(Exception):
            await delete_topology(await connection.channel(), names)
        await connection.close()
        if server is not None:
            server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
