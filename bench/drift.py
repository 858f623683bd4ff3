"""Benchmark of the drift queries (issue 15, management_api/drift.py): 1 API x 30 features over 1M
logged requests, and 100 APIs over 10M; the JSON payload (what is logged today) against a
compact typed form of the same features.

    .venv/bin/python -m bench drift [--requests 1000000] [--features 30] [--runs 20]
                                    [--large 10000000] [--large-apis 100] [--clickhouse-url URL]

Events are generated in ClickHouse (``INSERT ... SELECT``, as ``bench alert_cycle`` does) over
the last 24 h, each with a logged body of ``--features`` features (a fifth of them categories of
3 values, the rest normal numbers) and a prediction. The typed form is a table holding the same
rows' features as ``Map(LowCardinality(String), Float64)`` (numbers) and
``Map(LowCardinality(String), LowCardinality(String))`` (categories), ordered as request_events,
filled from the bodies as a materialized view would. Reported: p50/p95 of the drift report's
ClickHouse queries over 24 h (hourly buckets) for each form, and the bytes each form stores per
million requests (compressed and not). ``--large 0`` skips the 10M case (it takes minutes to
generate on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics import start_clickhouse
from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from management_api.drift import (
    NUMBER,
    SAMPLE_REQUESTS,
    SLOT,
    Dimension,
    bin_sql,
    category_parameters,
    dimensions,
    drift_counts,
    sampling,
)
from management_api.queries import MonitoringQueries
from management_api.reference import build_profile
from schemas import FeatureSpec, FeatureType, Task

SPAN_S = 86_400
CHUNK = 1_000_000
CATEGORIES = ["a", "b", "c"]


def is_category(i: int) -> bool:
    return i % 5 == 4


def body_sql(features: int) -> str:
    """SQL of one logged body: ``{"f0": 0.1234, ..., "f4": "b", ...}`` (``rand`` per row)."""
    parts = []
    for i in range(features):
        if is_category(i):
            value = f"concat('\"', ['a', 'b', 'c'][1 + (rand({i}) % 3)], '\"')"
        else:
            value = "toString(round(randNormal(0, 1), 4))"
        parts.append(f"'\"f{i}\": ', {value}")
    return "concat('{', " + ", ', ', ".join(parts) + ", '}')"


def insert_sql(db: str, apis: int, offset: int, rows: int, now: int, features: int) -> str:
    return f"""
INSERT INTO {db}.request_events
    (event_id, batch_id, ts, api_id, model_version, status_code, total_ms, rows, prediction,
     input, authenticated)
SELECT
    lower(hex(MD5(toString(number)))) AS event_id,
    concat('batch-', toString(intDiv(number, 500))) AS batch_id,
    fromUnixTimestamp64Milli(toInt64(({now} - {SPAN_S} * (number % 1000003) / 1000003) * 1000),
                             'UTC') AS ts,
    concat('api-', toString(number % {apis})) AS api_id,
    concat('model-', toString(number % {apis}), '-v1') AS model_version,
    if(rand(99) % 100 < 97, 200, 500) AS status_code,
    exp(randNormal(2.5, 0.9)) AS total_ms,
    1 AS rows,
    ['setosa', 'versicolor', 'virginica'][1 + (rand(98) % 3)] AS prediction,
    {body_sql(features)} AS input,
    true AS authenticated
FROM numbers({offset}, {rows})
"""


def typed_table_sql(db: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.request_features
(
    api_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    model_version LowCardinality(String),
    numbers Map(LowCardinality(String), Float64),
    categories Map(LowCardinality(String), LowCardinality(String))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (api_id, ts)
"""


def typed_fill_sql(db: str) -> str:
    """What a materialized view on request_events would write (answered, non-shadow rows)."""
    return f"""
INSERT INTO {db}.request_features
SELECT api_id, ts, model_version,
    mapFilter((k, v) -> isFinite(v), CAST(arrayMap(kv -> (kv.1,
        ifNull(toFloat64OrNull(kv.2), nan)), pairs), 'Map(String, Float64)')) AS numbers,
    mapFilter((k, v) -> v != '', CAST(arrayMap(kv -> (kv.1,
        if(startsWith(kv.2, '"'), JSONExtractString(kv.2), '')), pairs),
        'Map(String, String)')) AS categories
FROM
(
    SELECT api_id, ts, model_version, JSONExtractKeysAndValuesRaw(input) AS pairs
    FROM {db}.request_events
    WHERE NOT shadow AND status_code >= 200 AND status_code < 300 AND input != ''
)
"""


def typed_counts_sql(db: str, dims: list[Dimension]) -> str:
    """The drift counts over the typed form: the same bins as the JSON form's query
    (``management_api.drift.bin_sql``), each value read from its map instead of the body."""
    values = [
        f"if(mapContains({m}, '{d.name}'), {m}['{d.name}'], NULL)"
        for d in dims
        for m in ["numbers" if d.kind == NUMBER else "categories"]
    ]
    bins = ", ".join(
        ["toInt16(0)"]
        + [bin_sql(d, v, f"f{i}") for i, (d, v) in enumerate(zip(dims, values, strict=True))]
    )
    return f"""
SELECT slot, f, b, count() AS n
FROM
(
    SELECT {SLOT} AS slot, [{bins}] AS bins
    FROM {db}.request_features
    WHERE api_id = {{api_id:String}} AND model_version = {{version_key:String}}
      AND ts >= fromUnixTimestamp64Milli({{start_ms:Int64}})
      AND ts < fromUnixTimestamp64Milli({{end_ms:Int64}})
)
ARRAY JOIN bins AS b, arrayEnumerate(bins) AS f
WHERE b >= 0
GROUP BY slot, f, b
"""


def reference_for(features: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    columns: dict[str, Any] = {}
    specs = []
    for i in range(features):
        name = f"f{i}"
        if is_category(i):
            columns[name] = rng.choice(CATEGORIES, 5_000)
            specs.append(FeatureSpec(name=name, type=FeatureType.CATEGORY, categories=CATEGORIES))
        else:
            columns[name] = rng.normal(0, 1, 5_000)
            specs.append(FeatureSpec(name=name, type=FeatureType.NUMBER))
    predicted = rng.choice(["setosa", "versicolor", "virginica"], 1_000)
    return build_profile(pd.DataFrame(columns), specs, Task.CLASSIFICATION, list(predicted))


def pct(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[
        min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))
    ]


async def storage(client: Any, db: str) -> dict[str, tuple[int, int]]:
    """(compressed, uncompressed) bytes of the logged features in each form."""
    result = await client.query(
        "SELECT table, name, sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
        "FROM system.columns WHERE database = {db:String} AND ((table = 'request_events' "
        "AND name = 'input') OR table = 'request_features') GROUP BY table, name",
        parameters={"db": db},
    )
    out: dict[str, tuple[int, int]] = {}
    for table, name, compressed, raw in result.result_rows:
        key = "json input" if table == "request_events" else "typed"
        if table == "request_features" and name in ("api_id", "ts", "model_version"):
            continue  # the keys a typed table repeats are counted apart
        c, r = out.get(key, (0, 0))
        out[key] = (c + int(compressed), r + int(raw))
    return out


async def case(
    client: Any,
    url: str,
    label: str,
    requests: int,
    apis: int,
    features: int,
    runs: int,
    typed: bool = True,
    sampled_only: bool = False,
    sample: int = 0,
) -> None:
    database = f"bench_{uuid.uuid4().hex[:8]}"
    await migrate_database(url, database)
    try:
        now = int(time.time())
        started = time.perf_counter()
        for offset in range(0, requests, CHUNK):
            rows = min(CHUNK, requests - offset)
            await client.command(insert_sql(database, apis, offset, rows, now, features))
        generated = time.perf_counter() - started
        await client.command(typed_table_sql(database))
        started = time.perf_counter()
        if typed:
            await client.command(typed_fill_sql(database))
        typed_fill = time.perf_counter() - started
        with suppress(Exception):
            await client.command(f"OPTIMIZE TABLE {database}.request_events FINAL")
            await client.command(f"OPTIMIZE TABLE {database}.request_features FINAL")
        print(
            f"\n{label}: {requests:,} requests, {apis} API(s), {features} features: generated in "
            f"{generated:.1f}s" + (f", typed form filled in {typed_fill:.1f}s" if typed else "")
        )
        queries = MonitoringQueries(client, database)
        reference = reference_for(features)
        dims, prediction = dimensions(reference)
        end_ms = now * 1000 + 1
        window = (end_ms - SPAN_S * 1000, end_ms, 3_600_000)
        rng = random.Random(1)

        async def json_form() -> int:
            api = rng.randrange(apis)
            counts, _ = await drift_counts(
                queries, f"api-{api}", f"model-{api}-v1", dims, prediction, window
            )
            return int(sum(c[0] for c in counts.get(0, {}).values()))

        async def typed_form() -> int:
            api = rng.randrange(apis)
            start, end, step = window
            result = await client.query(
                typed_counts_sql(database, dims),
                parameters={
                    **category_parameters([(f"f{i}", d) for i, d in enumerate(dims)]),
                    "api_id": f"api-{api}",
                    "version_key": f"model-{api}-v1",
                    "start_ms": start,
                    "end_ms": end,
                    "step_ms": step,
                },
            )
            return len(result.result_rows)

        sampled_rows: list[int] = []

        async def sampled_form() -> int:
            """What the report runs: the window's size, then a sample of at most
            ``SAMPLE_REQUESTS`` requests (time slices the primary key serves)."""
            api = rng.randrange(apis)
            picked = await sampling(
                queries, f"api-{api}", f"model-{api}-v1", window, sample or SAMPLE_REQUESTS
            )
            counts, _ = await drift_counts(
                queries, f"api-{api}", f"model-{api}-v1", dims, prediction, window, picked.modulus
            )
            sampled_rows.append(int(sum(c[0] for c in counts.get(0, {}).values())))
            return picked.rows

        print(f"{'drift query (24 h, hourly)':<34} {'p50 ms':>8} {'p95 ms':>8}  ({runs} runs)")
        rows_seen = 0
        forms = [
            ("JSON, sampled (shipped)", sampled_form),
            ("JSON payload (input column)", json_form),
            ("typed maps", typed_form),
        ]
        for name, call in forms[: 3 if typed else 1 if sampled_only else 2]:
            await call()  # warm-up
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                got = await call()
                times.append((time.perf_counter() - started) * 1000)
                if call is json_form:
                    rows_seen = got
            p50, p95 = pct(times)
            print(f"{name:<34} {p50:8.1f} {p95:8.1f}")
            if call is sampled_form:
                low, high = min(sampled_rows), max(sampled_rows)
                print(f"  rows parsed per sampled query: {low:,}-{high:,}")
        print(f"rows per API in the window (JSON form, last run): {rows_seen:,}")
        sizes = await storage(client, database)
        per_million = 1_000_000 / requests
        for key, (compressed, raw) in sorted(sizes.items()):
            if key == "typed" and not typed:
                continue
            print(
                f"storage {key:<11}: {compressed * per_million / 2**20:8.1f} MiB compressed, "
                f"{raw * per_million / 2**20:8.1f} MiB raw per million requests"
            )
    finally:
        with suppress(Exception):
            await client.command(f"DROP DATABASE IF EXISTS {database}")


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    server = None
    url = args.clickhouse_url
    if not url:
        server, url = start_clickhouse(workdir / "clickhouse")
    client = await create_async_client(url)
    try:
        print(
            f"machine: {platform.node()}, {os.cpu_count()} CPU, load "
            f"{os.getloadavg()[0]:.2f}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        if not args.skip_one:
            await case(
                client,
                url,
                "one API",
                args.requests,
                1,
                args.features,
                args.runs,
                typed=not (args.json_only or args.sampled_only),
                sampled_only=args.sampled_only,
                sample=args.sample,
            )
        if args.large:
            await case(
                client,
                url,
                "many APIs",
                args.large,
                args.large_apis,
                args.features,
                args.runs,
                typed=not (args.large_json_only or args.json_only or args.sampled_only),
                sampled_only=args.sampled_only,
                sample=args.sample,
            )
    finally:
        await client.close()
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench drift", description=__doc__)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--large-apis", type=int, default=100)
    parser.add_argument(
        "--large-json-only",
        action="store_true",
        help="the 10M case measures the JSON form only (its typed fill takes ~20 min on 2 cores)",
    )
    parser.add_argument("--json-only", action="store_true", help="no typed form in either case")
    parser.add_argument(
        "--sampled-only",
        action="store_true",
        help="only the shipped (sampled) query: no full scan, no typed form",
    )
    parser.add_argument(
        "--sample", type=int, default=0, help="requests parsed at most (default: the report's)"
    )
    parser.add_argument("--skip-one", action="store_true", help="run the 10M case only")
    parser.add_argument("--clickhouse-url", default="")
    asyncio.run(run(parser.parse_args(argv)))
    return 0
