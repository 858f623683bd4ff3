"""``modelgate up``: the whole stack on one machine as supervised subprocesses.

Order: check RabbitMQ → embedded ClickHouse (unless ``MODELGATE_CLICKHOUSE_URL`` is set) →
migrations → management-api → ingress, predictors, metrics-consumer. Every child's output is
printed with a coloured ``[name]`` prefix; a child that dies is restarted with backoff; Ctrl-C or
SIGTERM stops everything in reverse order and waits for each to finish its in-flight work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import aio_pika
from pydantic import Field

from infra.settings import CommonSettings

log = logging.getLogger("modelgate.up")

COLOURS = ["36", "33", "35", "32", "34", "31", "96", "93", "95", "92"]


class StackSettings(CommonSettings):
    """Where ``modelgate up`` puts things; service ports use the services' own setting names."""

    stack_data_dir: Path = Path(".modelgate")
    """Directory for the embedded ClickHouse data, the metadata DB and the model store."""

    stack_predictors: int = 2
    """How many predictor worker processes to run."""

    ingress_port: int = 8000
    """Port of ingress (same setting as ingress's own)."""

    management_port: int = 8080
    """Port of the management API and dashboard (same setting as the management API's own)."""

    predictor_metrics_port: int = 9101
    """First Prometheus port of the predictors; worker i uses this + i."""

    consumer_metrics_port: int = 9200
    """Prometheus port of the metrics consumer."""

    stack_ready_timeout_s: float = Field(120.0)
    """How long to wait for each service to come up."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections there (used by the stack, tests and benches)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def rabbitmq_help(url: str, error: BaseException) -> str:
    parsed = urlparse(url)
    where = f"{parsed.hostname}:{parsed.port or 5672}"
    return (
        f"RabbitMQ is not reachable at {where} ({error.__class__.__name__}: {error}).\n"
        "modelgate needs it. To fix:\n"
        "  - on this machine: `rabbitmq-server -detached` (install with "
        "`apt-get install rabbitmq-server` if missing; `make run` does both), or\n"
        "  - point to another broker: MODELGATE_RABBITMQ_URL=amqp://user:pass@host:5672/"
    )


async def check_rabbitmq(url: str) -> str | None:
    """None when the broker accepts an AMQP connection, else a message saying how to fix it."""
    try:
        connection = await asyncio.wait_for(aio_pika.connect(url), timeout=10)
    except Exception as exc:
        return rabbitmq_help(url, exc)
    await connection.close()
    return None


@dataclass
class ServiceSpec:
    """One supervised child: its command, environment and how to tell it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_port: int | None = None
    one_shot: bool = False


class Supervisor:
    """Runs children, prefixes their output, restarts the ones that die, stops them all."""

    def __init__(self, *, max_restarts: int = 5) -> None:
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._order: list[str] = []
        self._stopping = False
        self._max_restarts = max_restarts
        self.failed = asyncio.Event()
        self.failure: str = ""

    def _colour(self, name: str) -> str:
        index = self._order.index(name) if name in self._order else 0
        return COLOURS[index % len(COLOURS)]

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        colour = self._colour(name)
        prefix = f"\x1b[{colour}m[{name:<16}]\x1b[0m " if sys.stdout.isatty() else f"[{name}] "
        while True:
            line = await stream.readline()
            if not line:
                return
            sys.stdout.write(prefix + line.decode(errors="replace").rstrip("\n") + "\n")
            sys.stdout.flush()

    async def _spawn(self, spec: ServiceSpec) -> asyncio.subprocess.Process:
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._processes[spec.name] = process
        assert process.stdout is not None
        self._tasks.append(asyncio.create_task(self._pump(spec.name, process.stdout)))
        return process

    async def run_once(self, spec: ServiceSpec) -> int:
        """Run a one-shot child (e.g. migrations) to completion and return its exit code."""
        self._order.append(spec.name)
        process = await self._spawn(spec)
        code = await process.wait()
        self._processes.pop(spec.name, None)
        return code

    async def start(self, spec: ServiceSpec, ready_timeout: float) -> None:
        """Start a long-running child, wait until its port answers, then keep it alive."""
        self._order.append(spec.name)
        process = await self._spawn(spec)
        if spec.ready_port is not None:
            deadline = time.monotonic() + ready_timeout
            while not port_open("127.0.0.1", spec.ready_port):
                if process.returncode is not None:
                    raise RuntimeError(f"{spec.name} exited with {process.returncode} at start")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{spec.name} did not open port {spec.ready_port} in {ready_timeout:.0f}s"
                    )
                await asyncio.sleep(0.1)
        self._tasks.append(asyncio.create_task(self._watch(spec, process)))

    async def _watch(self, spec: ServiceSpec, process: asyncio.subprocess.Process) -> None:
        restarts: list[float] = []
        while True:
            code = await process.wait()
            if self._stopping:
                return
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > self._max_restarts:
                self.failure = f"{spec.name} keeps dying (exit {code}); giving up"
                log.error(self.failure)
                self.failed.set()
                return
            delay = min(2 ** (len(restarts) - 1), 10)
            log.warning("%s exited with %s; restarting in %ss", spec.name, code, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            process = await self._spawn(spec)

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child in reverse start order, SIGKILL what is still there after timeout."""
        self._stopping = True
        for name in reversed(self._order):
            process = self._processes.get(name)
            if process is None or process.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                log.warning("%s did not stop in %ss; killing it", name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def modelgate_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "infra.cli", *args]


def build_services(settings: StackSettings, clickhouse_url: str) -> list[ServiceSpec]:
    """The long-running services, in start order (management API first: it owns the registry)."""
    common = {
        "MODELGATE_NAMESPACE": settings.namespace,
        "MODELGATE_RABBITMQ_URL": settings.rabbitmq_url,
        "MODELGATE_CLICKHOUSE_URL": clickhouse_url,
        "MODELGATE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "MODELGATE_MODEL_STORE": str(settings.model_store),
        "MODELGATE_DATABASE_URL": settings.database_url,
        "MODELGATE_PUBLIC_INGRESS_URL": settings.public_ingress_url,
        "MODELGATE_INGRESS_PORT": str(settings.ingress_port),
        "MODELGATE_MANAGEMENT_PORT": str(settings.management_port),
    }
    services = [
        ServiceSpec(
            "management-api",
            modelgate_argv("management-api"),
            dict(common),
            ready_port=settings.management_port,
        ),
        ServiceSpec(
            "ingress", modelgate_argv("ingress"), dict(common), ready_port=settings.ingress_port
        ),
    ]
    for i in range(settings.stack_predictors):
        port = settings.predictor_metrics_port + i
        env = {
            **common,
            "MODELGATE_PREDICTOR_ID": f"predictor-{i + 1}",
            "MODELGATE_PREDICTOR_METRICS_PORT": str(port),
        }
        services.append(
            ServiceSpec(f"predictor-{i + 1}", modelgate_argv("predictor"), env, ready_port=port)
        )
    consumer_env = {
        **common,
        "MODELGATE_CONSUMER_METRICS_PORT": str(settings.consumer_metrics_port),
    }
    services.append(
        ServiceSpec(
            "metrics-consumer",
            modelgate_argv("metrics-consumer"),
            consumer_env,
            ready_port=settings.consumer_metrics_port,
        )
    )
    return services


async def run_stack(settings: StackSettings, *, demo: bool, ready_file: Path | None) -> int:
    problem = await check_rabbitmq(settings.rabbitmq_url)
    if problem:
        sys.stderr.write(problem + "\n")
        return 1
    settings.stack_data_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    clickhouse_url = settings.clickhouse_url
    try:
        if "MODELGATE_CLICKHOUSE_URL" not in os.environ:
            parsed = urlparse(clickhouse_url)
            port = parsed.port or 8123
            if port_open("127.0.0.1", port):
                sys.stderr.write(
                    f"Port {port} is taken, so the embedded ClickHouse cannot start there.\n"
                    "Stop what uses it, or set MODELGATE_CLICKHOUSE_URL to use that server.\n"
                )
                return 1
            data_dir = settings.stack_data_dir / "clickhouse"
            argv = modelgate_argv(
                "clickhouse",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            )
            await supervisor.start(
                ServiceSpec("clickhouse", argv, ready_port=port), settings.stack_ready_timeout_s
            )
        code = await supervisor.run_once(
            ServiceSpec(
                "migrate",
                modelgate_argv("migrate"),
                {
                    "MODELGATE_CLICKHOUSE_URL": clickhouse_url,
                    "MODELGATE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
                },
            )
        )
        if code != 0:
            sys.stderr.write(f"ClickHouse migrations failed (exit {code}); see [migrate] above.\n")
            return 1
        for spec in build_services(settings, clickhouse_url):
            await supervisor.start(spec, settings.stack_ready_timeout_s)
        urls = {
            "dashboard_url": f"http://127.0.0.1:{settings.management_port}/",
            "management_url": f"http://127.0.0.1:{settings.management_port}",
            "ingress_url": settings.public_ingress_url,
            "clickhouse_url": clickhouse_url,
            "namespace": settings.namespace,
        }
        if demo:
            demo_code = await supervisor.run_once(
                ServiceSpec(
                    "demo",
                    modelgate_argv("demo"),
                    {
                        "MODELGATE_MANAGEMENT_PORT": str(settings.management_port),
                    },
                )
            )
            if demo_code != 0:
                log.warning("the demo step failed (exit %s); the stack keeps running", demo_code)
        if ready_file is not None:
            ready_file.write_text(json.dumps(urls))
        sys.stdout.write(
            "\nmodelgate is up.\n"
            f"  dashboard + management API  {urls['dashboard_url']}\n"
            f"  prediction ingress          {urls['ingress_url']}/api/predict/<api_id>\n"
            f"  ClickHouse (analysts)       {clickhouse_url.split('@')[-1]} "
            "(read-only user: analyst)\n"
            "Ctrl-C stops everything.\n\n"
        )
        sys.stdout.flush()
        stop_wait = asyncio.create_task(stop.wait())
        fail_wait = asyncio.create_task(supervisor.failed.wait())
        await asyncio.wait({stop_wait, fail_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        fail_wait.cancel()
        if supervisor.failed.is_set():
            sys.stderr.write(supervisor.failure + "\n")
            return 1
        return 0
    except RuntimeError as exc:
        sys.stderr.write(f"modelgate up: {exc}\n")
        return 1
    finally:
        sys.stdout.write("stopping...\n")
        await supervisor.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelgate up", description=__doc__.splitlines()[0])
    parser.add_argument("--predictors", type=int, help="number of predictor workers")
    parser.add_argument("--demo", action="store_true", help="run `modelgate demo` once it is up")
    parser.add_argument("--ready-file", type=Path, help="write the stack's URLs here when ready")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[up] %(levelname)s %(message)s")
    settings = StackSettings()
    if args.predictors is not None:
        settings.stack_predictors = args.predictors
    if "MODELGATE_MODEL_STORE" not in os.environ:
        settings.model_store = settings.stack_data_dir / "models"
    return asyncio.run(run_stack(settings, demo=args.demo, ready_file=args.ready_file))
