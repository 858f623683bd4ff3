"""Load shedding under overload: ingress with shedding off, then on, on the same processes.

``python -m bench overload`` starts ingress and predictors as ``bench predict`` does (own
processes, registry from memory), then runs wrk with many more connections than the predictors
serve within the queueing target (closed loop: C connections keep C requests waiting, so the
offered load is C / latency), once with shedding off (``MODELGATE_INGRESS_MAX_QUEUE_DELAY_MS=0``,
``MODELGATE_INGRESS_MAX_INFLIGHT_ROWS=0``: what ingress did before) and once with the defaults.
A first run at few connections gives the sustainable rate.

wrk's own percentiles mix answers and 503s, so each run's request events (drained from the
namespace's ``metrics.events`` queue) give the status counts and the latency of the answered
requests as ingress measured them (``total_ms``: parse to answer, queueing included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

import bench.predict
from bench.predict import IRIS_ROW, LUA, OwnStack, machine, run_wrk

RETRY_AFTER_LUA = """
-- Clients that honour Retry-After: after a 503 a request of this thread waits that long.
local pause_ms = 0
response = function(status, headers, body)
  if status == 503 then pause_ms = 1000 * (tonumber(headers["Retry-After"]) or 1) end
end
delay = function()
  local ms = pause_ms
  pause_ms = 0
  return ms
end
"""

SHEDDING_OFF = {
    "MODELGATE_INGRESS_MAX_QUEUE_DELAY_MS": "0",
    "MODELGATE_INGRESS_MAX_INFLIGHT_ROWS": "0",
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drain_events(stack: OwnStack, settle_s: float = 2.0) -> list[dict[str, Any]]:
    """Every request event waiting in ``metrics.events`` (the queue is left empty)."""
    events: list[dict[str, Any]] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < settle_s:
        message = await stack.topology.metrics_events.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        idle_since = time.monotonic()
        if message.routing_key == "request.batch":
            events.extend(orjson.loads(message.body)["events"])
    return events


async def shed_total(url: str) -> float:
    from aiohttp import ClientSession

    async with ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ingress_requests_shed_total{")
    )


async def gauges(url: str, names: tuple[str, ...]) -> dict[str, float]:
    from aiohttp import ClientSession

    async with ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value)
    return found


async def measure(
    stack: OwnStack,
    args: argparse.Namespace,
    label: str,
    connections: int,
    workdir: Path,
    retry_after: bool = False,
) -> dict[str, Any]:
    url, key = stack.api()
    await drain_events(stack, settle_s=0.5)
    shed_before = await shed_total(stack.url)
    names = ("ingress_rows_waiting", "ingress_expected_queue_delay_seconds")
    samples: list[dict[str, float]] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            samples.append(await gauges(stack.url, names))

    sampler = asyncio.create_task(sample())
    bench.predict.LUA = LUA + RETRY_AFTER_LUA if retry_after else LUA
    try:
        result = await run_wrk(
            url, json.dumps(IRIS_ROW), key, args.duration, connections, args.threads, workdir
        )
    finally:
        bench.predict.LUA = LUA
        sampler.cancel()
    await asyncio.sleep(1.0)  # the last events leave ingress (every 50 ms)
    events = await drain_events(stack)
    statuses: dict[int, int] = {}
    for event in events:
        statuses[event["status_code"]] = statuses.get(event["status_code"], 0) + 1
    answered = [e["total_ms"] for e in events if e["status_code"] == 200]
    total = max(1, len(events))
    row = {
        "label": label,
        "connections": connections,
        "wrk_rps": result["rps"],
        "wrk_p99_ms": result["p99_us"] / 1000,
        "events": len(events),
        "statuses": statuses,
        "answered_rps": len(answered) / args.duration,
        "answered_p50_ms": percentile(answered, 0.50),
        "answered_p99_ms": percentile(answered, 0.99),
        "answered_max_ms": max(answered, default=float("nan")),
        "shed_share": statuses.get(503, 0) / total,
        "timeouts": statuses.get(504, 0),
        "shed_counter": await shed_total(stack.url) - shed_before,
        "rows_waiting_max": max((g.get(names[0], 0.0) for g in samples), default=0.0),
        "expected_delay_ms_max": 1000 * max((g.get(names[1], 0.0) for g in samples), default=0.0),
    }
    print(
        f"  {label:<28} -c{connections:<4} answered {row['answered_rps']:6.0f}/s  "
        f"p50 {row['answered_p50_ms']:7.1f} ms  p99 {row['answered_p99_ms']:7.1f} ms  "
        f"max {row['answered_max_ms']:7.1f} ms  shed {100 * row['shed_share']:5.1f}%  "
        f"504 {row['timeouts']}  statuses {dict(sorted(statuses.items()))}  "
        f"(wrk {result['rps']:.0f} req/s, p99 {row['wrk_p99_ms']:.1f} ms incl. 503s; rows "
        f"waiting <= {row['rows_waiting_max']:.0f}, expected delay <= "
        f"{row['expected_delay_ms_max']:.0f} ms)"
    )
    return row


async def run(args: argparse.Namespace, workdir: Path) -> int:
    os.environ["MODELGATE_HTTP_PER_ADDRESS_EXEMPT_LOOPBACK"] = "true"  # wrk: many clients in one
    stack = OwnStack(args, workdir)
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f} at start")
    print(f"starting ingress + {args.predictors} predictor(s) (namespace {stack.namespace}) ...")
    await stack.start()
    rows = []
    try:
        await stack.warm_all_models()
        rows.append(await measure(stack, args, "sustainable (shedding on)", 32, workdir))
        runs = [(False, False), (True, False), (True, True)]
        for shedding, retry_after in runs:
            if (shedding, retry_after) != (True, True):  # that one reuses the ingress before
                for name, value in SHEDDING_OFF.items():
                    if shedding:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                await stack.restart_ingress(stack.spool)
                await stack.warm_all_models()
            label = "shedding " + ("on" if shedding else "off (before)")
            label += ", clients retry after" if retry_after else ""
            rows.append(await measure(stack, args, label, args.connections, workdir, retry_after))
    finally:
        await stack.stop()
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    print("JSON " + json.dumps(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench overload", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=600, help="of the overload runs")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--predictors", type=int, default=1)
    parser.add_argument("--models", type=int, default=1, help="models loaded in each predictor")
    parser.add_argument("--event-spool", choices=["on", "off"], default="on")
    parser.add_argument(
        "--rabbitmq-url",
        default=os.environ.get("MODELGATE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is missing: `apt-get install -y wrk` (Debian package wrk)\n")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-overload-"))
    try:
        return asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
