"""Load ``POST /api/predict/{id}`` with wrk and compare with a bare aiohttp JSON echo.

``python -m bench predict`` (or ``make bench``) by default runs its own processes: ingress and two
predictor workers as ``modelgate`` subprocesses, a registry answered from memory by this process,
ten small models in a temporary store. ``--stack`` instead uses a stack already started by
``modelgate up`` and the API ``modelgate demo --json --rate-limit N`` prints.

Reports requests/s, p50 and p99 for both servers, the ratio, the RSS of ingress and the predictors
(with ten models loaded), and, in own-process mode, that every request's event landed on the
broker (the namespace's ``metrics.events`` queue, drained after the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import psutil

from infra.localnet import free_port, port_open
from modelgate.stack import ServiceSpec, StackProcess, Supervisor, modelgate_argv

ROOT = Path(__file__).resolve().parents[1]
IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
IRIS_FEATURES = list(IRIS_ROW)

LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{key_header}
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"max_us\\": %d, \\"status_errors\\": %d, \\"connect_errors\\": %d, " ..
    "\\"read_errors\\": %d, \\"timeouts\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.timeout))
end
"""


def lua_string(text: str) -> str:
    return "[[" + text + "]]"


async def run_wrk(
    url: str,
    body: str,
    key: str | None,
    duration: int,
    connections: int,
    threads: int,
    workdir: Path,
) -> dict[str, Any]:
    script = workdir / f"wrk-{secrets.token_hex(3)}.lua"
    key_header = f'wrk.headers["X-API-Key"] = {lua_string(key)}' if key else ""
    script.write_text(LUA.format(body=lua_string(body), key_header=key_header))
    process = await asyncio.create_subprocess_exec(
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode()
    match = re.search(r"WRKJSON (\{.*\})", text)
    if not match:
        raise RuntimeError(f"wrk gave no result:\n{text}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def fmt(result: dict[str, Any]) -> str:
    return (
        f"{result['rps']:8.0f} req/s   p50 {result['p50_us'] / 1000:6.2f} ms   "
        f"p90 {result['p90_us'] / 1000:6.2f} ms   p99 {result['p99_us'] / 1000:6.2f} ms   "
        f"non-2xx {result['status_errors']}  socket errors "
        f"{result['connect_errors'] + result['read_errors'] + result['timeouts']}"
    )


async def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / (1024 * 1024)


async def measure_echo(args: argparse.Namespace, body: str, workdir: Path) -> dict[str, Any]:
    port = free_port()
    echo = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; it is waited below
        [sys.executable, "-m", "bench.echo_server", "--port", str(port)], cwd=ROOT
    )
    try:
        await wait_http_post(f"http://127.0.0.1:{port}/echo", body)
        return await run_wrk(
            f"http://127.0.0.1:{port}/echo",
            body,
            None,
            args.duration,
            args.connections,
            args.threads,
            workdir,
        )
    finally:
        echo.terminate()
        echo.wait(timeout=10)


async def wait_http_post(url: str, body: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.post(url, data=body, headers={"Content-Type": "application/json"}):
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class OwnStack:
    """Ingress + predictors as subprocesses (run by ``modelgate up``'s ``Supervisor``: the same
    readiness checks and stop order), registry answered from memory by this process."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.namespace = f"bench-{secrets.token_hex(4)}"
        self.store = workdir / "models"
        self.port = free_port()
        self.supervisor = Supervisor(log_dir=workdir)
        self.spool = False
        self.keys: dict[str, str] = {}
        self.records: list[Any] = []

    def train(self) -> None:
        import numpy as np
        import pandas as pd
        from sklearn.datasets import load_iris
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.tree import DecisionTreeClassifier

        from infra.model_store import ModelStore
        from schemas import ApiRecord, FeatureSpec, FeatureType, Task

        data = load_iris()
        frame = pd.DataFrame(data.data, columns=IRIS_FEATURES)
        target = np.array(data.target_names)[data.target]
        store = ModelStore(self.store)
        features = [FeatureSpec(name=n, type=FeatureType.NUMBER) for n in IRIS_FEATURES]
        for i in range(self.args.models):
            if i == 0:
                model: Any = LogisticRegression(max_iter=500)
            elif i % 3 == 1:
                model = DecisionTreeClassifier(max_depth=3 + i % 4, random_state=i)
            elif i % 3 == 2:
                model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=i)
            else:
                model = LogisticRegression(max_iter=500, C=0.1 * i)
            pipe = Pipeline([("scale", StandardScaler()), ("model", model)]).fit(frame, target)
            version = f"bench-iris-v{i + 1}"
            store.save(version, pipe, {"task": "classification"})
            key = "mg_" + secrets.token_urlsafe(48)
            api_id = f"bench-{i + 1}"
            self.keys[api_id] = key
            self.records.append(
                ApiRecord(
                    api_id=api_id,
                    name=api_id,
                    key_hash=hashlib.sha256(key.encode()).hexdigest(),
                    key_prefix=key[:8],
                    version_key=version,
                    task=Task.CLASSIFICATION,
                    features=features,
                    classes=[str(c) for c in data.target_names],
                    rate_limit_per_minute=1_000_000_000,
                )
            )

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "MODELGATE_NAMESPACE": self.namespace,
            "MODELGATE_RABBITMQ_URL": self.args.rabbitmq_url,
            "MODELGATE_MODEL_STORE": str(self.store),
            "MODELGATE_LOG_LEVEL": "WARNING",
            **extra,
        }

    @property
    def processes(self) -> dict[str, psutil.Process]:
        return {name: psutil.Process(self.supervisor.pid(name)) for name in self.supervisor.names()}

    async def start(self) -> None:
        from infra.registry import RegistryResponder
        from infra.topology import Topology, declare_topology

        self.train()
        self.connection = await aio_pika.connect_robust(self.args.rabbitmq_url)
        channel = await self.connection.channel(publisher_confirms=True)
        self.topology = await declare_topology(channel, Topology(self.namespace))

        async def source() -> list[Any]:
            return self.records

        self.responder = RegistryResponder(await self.connection.channel(), self.topology, source)
        await self.responder.start()
        await asyncio.gather(*(self.start_predictor(i + 1) for i in range(self.args.predictors)))
        await self.wait_predictors()
        await self.start_ingress(self.args.event_spool != "off")

    async def start_predictor(self, number: int) -> None:
        port, worker = free_port(), f"bench-predictor-{number}"
        spec = ServiceSpec(
            f"predictor-{number}",
            modelgate_argv("predictor"),
            self.env(MODELGATE_PREDICTOR_ID=worker, MODELGATE_PREDICTOR_METRICS_PORT=str(port)),
            service="predictor",
            instance_id=worker,
            health_url=f"http://127.0.0.1:{port}/health",
            group="predictors",
        )
        await self.supervisor.start(spec, ready_timeout=120)

    async def start_ingress(self, spool: bool) -> None:
        """Ingress with its event spool in the work dir (the default of ``modelgate up``) or
        without (events in memory only, as before the spool); ready once it sees a predictor."""
        self.spool = spool
        spec = ServiceSpec(
            "ingress",
            modelgate_argv("ingress"),
            self.env(
                MODELGATE_INGRESS_PORT=str(self.port),
                MODELGATE_INGRESS_ID="bench-ingress",
                MODELGATE_INGRESS_EVENTS_SPOOL_DIR=str(self.workdir / "spool") if spool else "",
            ),
            service="ingress",
            instance_id="bench-ingress",
            health_url=f"{self.url}/health",
            ready_url=f"{self.url}/ready",
            ready_field="predictors_online",
        )
        await self.supervisor.start(spec, ready_timeout=120)

    async def restart_ingress(self, spool: bool) -> None:
        await self.supervisor.stop_service("ingress", timeout=30)
        await self.start_ingress(spool)

    async def wait_predictors(self, timeout: float = 60.0) -> None:
        channel = await (await self.connection.channel()).get_underlay_channel()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = await channel.queue_declare(self.topology.names.predict_requests, passive=True)
            if (result.consumer_count or 0) >= self.args.predictors:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("predictors did not start; see their logs in " + str(self.workdir))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self) -> tuple[str, str]:
        return f"{self.url}/api/predict/bench-1", self.keys["bench-1"]

    async def warm_all_models(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(4):  # reach both predictors with every model
                for api_id, key in self.keys.items():
                    async with http.post(
                        f"{self.url}/api/predict/{api_id}",
                        json={"instances": [IRIS_ROW] * 4},
                        headers={"X-API-Key": key},
                    ) as response:
                        if response.status != 200:
                            raise RuntimeError(
                                f"{api_id}: {response.status} {await response.text()}"
                            )

    async def count_events(self, settle_s: float = 3.0) -> int:
        """Drain ``metrics.events`` and count request events (after the run, so it costs no CPU)."""
        import orjson

        count = 0
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < settle_s:
            message = await self.topology.metrics_events.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            idle_since = time.monotonic()
            if message.routing_key == "request.batch":
                count += len(orjson.loads(message.body)["events"])
        return count

    async def stop(self) -> None:
        from infra.topology import delete_topology

        await self.supervisor.stop()  # ingress first, then the predictors
        with contextlib.suppress(Exception):
            await self.responder.stop()
            await delete_topology(await self.connection.channel(), self.topology.names)
        await self.connection.close()


async def ingress_metric(url: str, name: str) -> float | None:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else None


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:  # e.g. another RabbitMQ on a shared machine went away
        return 0.0
    return float(times.user + times.system)


def broker_processes() -> dict[str, psutil.Process]:
    found = {}
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            found["rabbitmq"] = process
    return found


async def stored_events(api_id: str, settle_s: float = 0.0) -> int | None:
    """Distinct event ids of this API in ClickHouse, once the count stops changing."""
    from infra.settings import CommonSettings

    common = CommonSettings()
    query = (
        f"SELECT uniqExact(event_id) FROM {common.clickhouse_database}.request_events "
        f"WHERE api_id = '{api_id}'"
    )
    last: int | None = None
    deadline = time.monotonic() + 60.0
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.post(common.clickhouse_url, data=query) as response:
                    if response.status != 200:
                        return None
                    count = int((await response.text()).strip())
            except (aiohttp.ClientError, OSError, ValueError):
                return None
            if settle_s <= 0 or count == last or time.monotonic() > deadline:
                return count
            last = count
            await asyncio.sleep(settle_s)


def stack_processes(namespace: str) -> dict[str, psutil.Process]:
    """The services of a running ``modelgate up`` for this namespace, by name."""
    found: dict[str, psutil.Process] = {}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "modelgate.cli" not in cmdline and not any(c.endswith("/modelgate") for c in cmdline):
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get("MODELGATE_NAMESPACE", "modelgate") != namespace:
                continue
            service = (
                cmdline[cmdline.index("modelgate.cli") + 1] if "modelgate.cli" in cmdline else "?"
            )
            if service in {"up", "demo"}:
                continue
            name = service
            index = 2
            while name in found:
                name = f"{service}-{index}"
                index += 1
            found[name] = process
    return found


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()}, {cpu}, nproc={os.cpu_count()}, Python {platform.python_version()}"


def print_run(
    result: dict[str, Any], watched: dict[str, psutil.Process], cpu_before: dict[str, float]
) -> None:
    """The wrk figures and the CPU each watched process spent per request."""
    cpu_used = {name: cpu_seconds(p) - cpu_before[name] for name, p in watched.items()}
    print(f"  modelgate ingress  {fmt(result)}")
    print(
        "  CPU per request: "
        + ", ".join(
            f"{name} {used / max(1, result['requests']) * 1e6:.0f} us"
            for name, used in cpu_used.items()
        )
    )


async def compare_with_echo(
    args: argparse.Namespace, body: str, workdir: Path, result: dict[str, Any]
) -> None:
    """Load the bare aiohttp echo the same way and print the ratio and the machine."""
    echo = await measure_echo(args, body, workdir)
    print(f"  aiohttp JSON echo  {fmt(echo)}")
    print(f"  ratio ingress / echo: {result['rps'] / echo['rps']:.2f}")
    print(f"  machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


async def run_own(args: argparse.Namespace, workdir: Path) -> int:
    stack = OwnStack(args, workdir)
    print(f"starting ingress + {args.predictors} predictors (namespace {stack.namespace}) ...")
    await stack.start()
    # --event-spool compare: the same processes measured with the spool and without, alternated
    # (on, off, on, off) so a change of load on a shared machine hits both alike.
    modes = [True, False] * 2 if args.event_spool == "compare" else [args.event_spool == "on"]
    completed = 0
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        await stack.warm_all_models()
        url, key = stack.api()
        body = json.dumps(IRIS_ROW)
        for n, spool in enumerate(modes):
            if n:
                await stack.restart_ingress(spool)
            published_before = await ingress_metric(stack.url, "ingress_events_published") or 0.0
            print(
                f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s POST {url} "
                f"(event spool {'on' if spool else 'off'})"
            )
            watched = {name: psutil.Process(p.pid) for name, p in stack.processes.items()}
            watched.update(broker_processes())
            cpu_before = {name: cpu_seconds(p) for name, p in watched.items()}
            result = await run_wrk(
                url, body, key, args.duration, args.connections, args.threads, workdir
            )
            print_run(result, watched, cpu_before)
            completed += result["requests"]
            rates[spool].append(result["rps"])
            ingress_rss = rss_mb(stack.processes["ingress"].pid)
            predictor_rss = [
                rss_mb(p.pid) for name, p in stack.processes.items() if name.startswith("predictor")
            ]
            await asyncio.sleep(1.0)
            depth = await ingress_metric(stack.url, "ingress_event_buffer_depth")
            published = await ingress_metric(stack.url, "ingress_events_published") or 0.0
            print(
                f"  ingress RSS {ingress_rss:.0f} MB; predictors RSS with {args.models} models "
                "loaded: " + ", ".join(f"{r:.0f} MB" for r in predictor_rss)
            )
            print(
                f"  events confirmed during the run {published - published_before:.0f}, "
                f"still buffered {depth}; wrk completed {result['requests']} requests"
            )
        landed = await stack.count_events()
    finally:
        await stack.stop()
    print(
        f"  events landed in metrics.events {landed} (includes {args.models * 4} warm-up "
        f"requests); wrk completed {completed} requests in all runs"
    )
    for spool, values in rates.items():
        if values:
            print(
                f"  event spool {'on ' if spool else 'off'}: "
                + ", ".join(f"{v:.0f}" for v in values)
                + f" req/s (mean {sum(values) / len(values):.0f})"
            )
    await compare_with_echo(args, body, workdir, result)
    return 0


def demo_api() -> dict[str, Any] | None:
    """The demo API of a running ``modelgate up`` (``modelgate demo --json``), rate limit raised."""
    out = subprocess.run(
        [sys.executable, "-m", "modelgate.cli", "demo", "--json", "--rate-limit", "1000000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.stderr.write(f"modelgate demo failed (is `modelgate up` running?):\n{out.stderr}\n")
        return None
    demo: dict[str, Any] = json.loads(out.stdout)
    return demo


async def run_stack(args: argparse.Namespace, workdir: Path, demo: dict[str, Any]) -> int:
    url, key = demo["api_url"], demo["api_key"]
    body = json.dumps(demo["example_request"])
    base = url.split("/api/predict/")[0]
    before = await ingress_metric(base, "ingress_events_published") or 0.0
    api_id = url.rsplit("/", 1)[-1]
    stored_before = await stored_events(api_id)
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s POST {url} (modelgate up)")
    watched = stack_processes(os.environ.get("MODELGATE_NAMESPACE", "modelgate"))
    watched.update(broker_processes())
    cpu_before = {name: cpu_seconds(p) for name, p in watched.items()}
    result = await run_wrk(url, body, key, args.duration, args.connections, args.threads, workdir)
    print_run(result, watched, cpu_before)
    print(
        "  RSS: "
        + ", ".join(
            f"{name} {rss_mb(p.pid):.0f} MB"
            for name, p in watched.items()
            if name.startswith(("ingress", "predictor"))
        )
    )
    await asyncio.sleep(1.0)
    after = await ingress_metric(base, "ingress_events_published") or 0.0
    depth = await ingress_metric(base, "ingress_event_buffer_depth")
    print(
        f"  events confirmed by the broker during the run: {after - before:.0f}; "
        f"still buffered: {depth}; wrk completed {result['requests']}"
    )
    stored_after = await stored_events(api_id, settle_s=3.0)
    if stored_before is not None and stored_after is not None:
        print(
            "  events stored in ClickHouse request_events during the run: "
            f"{stored_after - stored_before}"
        )
    await compare_with_echo(args, body, workdir, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench predict", description=__doc__)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--predictors", type=int, default=2)
    parser.add_argument("--models", type=int, default=10, help="models loaded in each predictor")
    parser.add_argument("--stack", action="store_true", help="use a running `modelgate up`")
    parser.add_argument(
        "--event-spool",
        choices=["on", "off", "compare"],
        default="on",
        help="own-process mode: ingress with its crash-safe event spool (on, as `modelgate up`), "
        "without it (off: events in memory only), or both back to back on the same processes",
    )
    parser.add_argument(
        "--rabbitmq-url",
        default=os.environ.get("MODELGATE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is missing: `apt-get install -y wrk` (Debian package wrk)\n")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))
    stack: StackProcess | None = None
    try:
        demo = None
        if args.stack:
            management_port = int(os.environ.get("MODELGATE_MANAGEMENT_PORT", "8080"))
            if not port_open("127.0.0.1", management_port):
                stack = start_stack(workdir)
                if stack is None:
                    return 1
            demo = demo_api()
            if demo is None:
                return 1
        return asyncio.run(run_stack(args, workdir, demo) if demo else run_own(args, workdir))
    finally:
        if stack is not None:
            print("stopping the stack this benchmark started ...")
            stack.stop(timeout=90)
        shutil.rmtree(workdir, ignore_errors=True)


def start_stack(workdir: Path, timeout: float = 240.0) -> StackProcess | None:
    """Start ``modelgate up`` on a temporary data dir and wait until it is ready."""
    # In os.environ, not only the child's: `modelgate demo` must find the same data dir and DB.
    os.environ["MODELGATE_STACK_DATA_DIR"] = str(workdir / "stack")
    up = StackProcess(dict(os.environ), workdir, cwd=ROOT)
    print(f"no stack answers; starting `modelgate up` (log: {up.log_path}) ...")
    try:
        up.start(timeout)
    except RuntimeError as exc:
        sys.stderr.write(f"{exc}\n")
        return None
    return up


if __name__ == "__main__":
    raise SystemExit(main())
