"""Latency of the first requests after a deploy, with and without the warm switch (issue 11).

``python -m bench warm-switch`` starts its own ingress and predictors (``bench.predict.OwnStack``:
``modelgate`` subprocesses, registry answered from memory), keeps ``--clients`` closed-loop
clients posting to one API, deploys ``--deploys`` new versions of it one after the other (a random
forest each, whose load is what the first request used to pay), and reports, per mode, the latency
of the first ``--first`` requests sent after each deploy beside the steady latency before it.

Modes: ``off`` is the behaviour before the warm switch (``MODELGATE_PREDICTOR_PRELOAD=false``,
``MODELGATE_INGRESS_WARM_SWITCH_TIMEOUT_S=0``: ingress switches at once, the version loads on its
first request); ``on`` is the default (predictors preload on the deploy event, ingress switches
once every predictor answered and one reported the version ready); ``on-nice10`` the same with
the preload threads at ``nice`` +10. Modes alternate ``--rounds`` times, each on a fresh stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.predict import IRIS_FEATURES, IRIS_ROW, OwnStack, machine

MODES = {
    "off": {"MODELGATE_PREDICTOR_PRELOAD": "false", "MODELGATE_INGRESS_WARM_SWITCH_TIMEOUT_S": "0"},
    "on": {
        "MODELGATE_PREDICTOR_PRELOAD": "true",
        "MODELGATE_INGRESS_WARM_SWITCH_TIMEOUT_S": "30",
        "MODELGATE_PREDICTOR_PRELOAD_NICENESS": "0",
    },
    "on-nice10": {
        "MODELGATE_PREDICTOR_PRELOAD": "true",
        "MODELGATE_INGRESS_WARM_SWITCH_TIMEOUT_S": "30",
        "MODELGATE_PREDICTOR_PRELOAD_NICENESS": "10",
    },
}


def save_versions(stack: OwnStack, count: int, trees: int) -> list[str]:
    """``count`` random forests for the bench API to be deployed to (same features, classes)."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from infra.model_store import ModelStore

    data = load_iris()
    frame = pd.DataFrame(data.data, columns=IRIS_FEATURES)
    target = np.array(data.target_names)[data.target]
    store = ModelStore(stack.store)
    versions = []
    for i in range(count):
        model = RandomForestClassifier(n_estimators=trees, random_state=i).fit(frame, target)
        version = f"bench-deploy-v{i + 2}"
        store.save(version, model, {"task": "classification"})
        versions.append(version)
    return versions


class Traffic:
    """Closed-loop clients; every answer recorded as (sent at, latency ms, version, status)."""

    def __init__(self, url: str, key: str, clients: int) -> None:
        self.url, self.key, self.clients = url, key, clients
        self.samples: list[tuple[float, float, str, int]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _client(self, http: aiohttp.ClientSession) -> None:
        headers = {"X-API-Key": self.key}
        while not self._stop.is_set():
            sent = time.monotonic()
            async with http.post(self.url, json=IRIS_ROW, headers=headers) as response:
                body = await response.json()
            elapsed = (time.monotonic() - sent) * 1000.0
            self.samples.append((sent, elapsed, body.get("model_version", ""), response.status))

    async def start(self, http: aiohttp.ClientSession) -> None:
        self._tasks = [asyncio.create_task(self._client(http)) for _ in range(self.clients)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    from infra.registry import publish_api_changed
    from schemas import ApiChanged, ApiChangeKind

    os.environ.update(MODES[mode])
    stack = OwnStack(args, workdir)
    versions = save_versions(stack, args.deploys, args.trees)
    await stack.start()
    results: list[dict[str, Any]] = []
    try:
        await stack.warm_all_models()
        url, key = stack.api()
        async with aiohttp.ClientSession() as http:
            traffic = Traffic(url, key, args.clients)
            await traffic.start(http)
            await asyncio.sleep(2.0)
            for number, version in enumerate(versions, start=2):
                before = len(traffic.samples)
                record = stack.records[0].model_copy(
                    update={"version_key": version, "version_number": number}
                )
                stack.records[0] = record
                deployed_at = time.monotonic()
                await publish_api_changed(
                    stack.topology,
                    ApiChanged(kind=ApiChangeKind.DEPLOYED, api_id=record.api_id, api=record),
                )
                while (  # noqa: ASYNC110 - polls the clients' samples, bounded by the run
                    not any(s[2] == version for s in traffic.samples[before:])
                    or len(traffic.samples) - before < args.first * 3
                ):
                    await asyncio.sleep(0.05)
                await asyncio.sleep(args.pause)
                steady = [s[1] for s in traffic.samples[max(0, before - 200) : before]]
                after = [s for s in traffic.samples[before:] if s[0] >= deployed_at][: args.first]
                answered = [s for s in traffic.samples[before:] if s[2] == version][: args.first]
                switched = answered[0]
                results.append(
                    {
                        "mode": mode,
                        "version": version,
                        "first": [s[1] for s in after],
                        "new_first": [s[1] for s in answered],
                        "errors": sum(1 for s in after if s[3] != 200),
                        "steady_p50": statistics.median(steady),
                        "steady_p99": sorted(steady)[int(len(steady) * 0.99) - 1],
                        "switch_ms": (switched[0] - deployed_at) * 1000.0,
                    }
                )
                print(summary_line(results[-1]), flush=True)
            await traffic.stop()
    finally:
        await stack.stop()
    return results


def summary_line(r: dict[str, Any]) -> str:
    first = r["first"]
    return (
        f"  {r['mode']:>7} {r['version']}: first {len(first)} after deploy "
        f"p50 {statistics.median(first):.1f} ms, max {max(first):.1f} ms, "
        f"over 50 ms {sum(1 for x in first if x > 50)}, errors {r['errors']}; "
        f"first {len(r['new_first'])} by the new version "
        f"p50 {statistics.median(r['new_first']):.1f} max {max(r['new_first']):.1f} ms; "
        f"steady p50 {r['steady_p50']:.1f} ms p99 {r['steady_p99']:.1f} ms; "
        f"new version answering {r['switch_ms']:.0f} ms after the deploy"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench warm-switch", description=__doc__)
    parser.add_argument(
        "--rabbitmq-url",
        default=os.environ.get("MODELGATE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    parser.add_argument("--predictors", type=int, default=2)
    parser.add_argument("--models", type=int, default=3, help="other APIs (warm) beside it")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--deploys", type=int, default=4)
    parser.add_argument("--first", type=int, default=20)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=3.0)
    parser.add_argument("--modes", default="off,on", help=f"of {', '.join(MODES)}")
    args = parser.parse_args(argv)
    args.event_spool = "off"
    print(f"machine: {machine()}")
    everything: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for mode in args.modes.split(","):
            with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
                everything += asyncio.run(run_mode(mode, args, Path(tmp)))
    for mode in args.modes.split(","):
        rows = [r for r in everything if r["mode"] == mode]
        first = [x for r in rows for x in r["first"]]
        new_first = [x for r in rows for x in r["new_first"]]
        worst = ", ".join(f"{max(r['first']):.0f}" for r in rows)
        switch = ", ".join(f"{r['switch_ms']:.0f}" for r in rows)
        steady = statistics.median(r["steady_p50"] for r in rows)
        print(
            f"{mode}: {len(rows)} deploys, first {args.first} requests after each: "
            f"p50 {statistics.median(first):.1f} ms, max {max(first):.1f} ms, "
            f"over 50 ms {sum(1 for x in first if x > 50)} of {len(first)}, "
            f"per deploy max {worst} ms; first {args.first} by the new version: "
            f"p50 {statistics.median(new_first):.1f} ms, max {max(new_first):.1f} ms; "
            f"steady p50 {steady:.1f} ms; switch after {switch} ms"
        )
    return 0
