"""``modelgate up``: the whole stack on one machine as supervised subprocesses.

Before anything starts, every port the stack will listen on is checked: a taken one stops it with
one line naming the port and the setting that moves it. Order: RabbitMQ → embedded ClickHouse
(unless ``MODELGATE_CLICKHOUSE_URL`` is set) → migrations → management-api → metrics-consumer →
predictors → ingress, each started only when the one before is ready: its own ``/health`` answers
with its own name and instance id (ingress also waits until it sees a predictor consuming). Every
child's output is printed with a coloured ``[name]`` prefix; a child that dies is restarted with
backoff. Ctrl-C or SIGTERM stops them in the reverse order: ingress first (it stops accepting and
answers what is in flight), then the predictors and the consumer, then the rest.

``Supervisor`` is also what the benches use to run services, and ``StackProcess`` runs ``modelgate
up`` itself for the tests' stack fixture and the benches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import aio_pika
import aiohttp
import psutil
from pydantic import Field

from infra.clickhouse_server.settings import ensure_default_password
from infra.localnet import port_taken
from infra.private_files import create_private_file, private_dir, restrict_existing
from infra.settings import CommonSettings, with_credentials

log = logging.getLogger("modelgate.up")

ADMIN_PASSWORD_FILE = "admin-password"
"""The management API's file of a generated first-admin password, in its data dir (a unit test
checks it is ``management_api.app``'s; imported from there, it would load the whole service)."""

COLOURS = ["36", "33", "35", "32", "34", "31", "96", "93", "95", "92"]


class StackSettings(CommonSettings):
    """Where ``modelgate up`` puts things; service ports use the services' own setting names."""

    stack_data_dir: Path = Path(".modelgate")
    """Directory of everything the stack keeps: the embedded ClickHouse data, the SQLite metadata
    DB, the model store, ingress's event spool, the secrets (each unless its own setting is set)."""

    stack_predictors: int = 2
    """How many predictor worker processes to run."""

    stack_ingress_workers: int = Field(0, ge=0)
    """How many ingress processes share the ingress port (``SO_REUSEPORT``; each has its own
    instance id, reply queue, event spool and health, and a share of every rate limit). 0: by
    the core count, ``default_ingress_workers(os.cpu_count())``."""

    ingress_host: str = "127.0.0.1"
    """Interface of ingress (same setting as ingress's own)."""

    ingress_port: int = 8000
    """Port of ingress (same setting as ingress's own)."""

    management_host: str = "127.0.0.1"
    """Interface of the management API (same setting as the management API's own)."""

    management_port: int = 8080
    """Port of the management API and dashboard (same setting as the management API's own)."""

    predictor_metrics_host: str = "127.0.0.1"
    """Interface of the predictors' ``/metrics`` and ``/health``."""

    predictor_metrics_port: int = 9101
    """First Prometheus port of the predictors; worker i uses this + i."""

    consumer_metrics_host: str = "127.0.0.1"
    """Interface of the metrics consumer's ``/metrics`` and ``/health``."""

    consumer_metrics_port: int = 9200
    """Prometheus port of the metrics consumer."""

    clickhouse_server_port: int = 8123
    """Port of the embedded ClickHouse (same setting as ``modelgate clickhouse``'s own); unused
    when ``MODELGATE_CLICKHOUSE_URL`` names a server."""

    clickhouse_server_data_dir: Path | None = None
    """Data directory of the embedded ClickHouse; default ``<data dir>/clickhouse``."""

    management_data_dir: Path | None = None
    """Directory of the management API's secrets (JWT secret, first-admin password); default the
    data dir."""

    ingress_events_spool_dir: str | None = None
    """Ingress's crash-safe event spool; default ``<data dir>/ingress-spool``, empty: none. With
    several ingress processes, process 1 uses this directory and process i ``<it>/replica-i``."""

    stack_ready_timeout_s: float = Field(120.0)
    """How long to wait for each service to come up."""

    def resolve_paths(self) -> None:
        """Put what has no setting of its own in the data dir (model store, SQLite DB, ...)."""
        given = self.model_fields_set
        data = self.stack_data_dir
        if "model_store" not in given:
            self.model_store = data / "models"
        if "database_url" not in given:
            self.database_url = f"sqlite+aiosqlite:///{data / 'modelgate.db'}"
        if self.clickhouse_server_data_dir is None:
            self.clickhouse_server_data_dir = data / "clickhouse"
        if self.management_data_dir is None:
            self.management_data_dir = data
        if self.ingress_events_spool_dir is None:
            self.ingress_events_spool_dir = str(data / "ingress-spool")
        if self.stack_ingress_workers == 0:
            self.stack_ingress_workers = default_ingress_workers(os.cpu_count())

    @property
    def embedded_clickhouse(self) -> bool:
        """Whether ``up`` runs the embedded ClickHouse (no server URL was given)."""
        # From the environment, not model_fields_set: the password-file validator assigns the URL.
        return "MODELGATE_CLICKHOUSE_URL" not in os.environ


INGRESS_CORES_PER_WORKER = 4
"""One ingress process per this many cores (at least one). Ingress takes about a third of the
whole stack's CPU per answered request (issue 13: 62 of 193 us; predictors, ClickHouse, RabbitMQ
and the consumer the rest), so on a machine that runs the whole stack an ingress process has
about a core's worth of work per four cores. On the 2-core bench machine a second process did
not raise req/s (1 process: 1,519 and 2,262 req/s; 2: 2,199 and 1,502, wrk -c32, the machine
shared, load 4-7) and cost more ingress CPU per request (about 250-330 us against 210-250):
one it is there. ``--ingress-workers`` overrides it (``bench`` records the scaling table)."""


def default_ingress_workers(cpus: int | None) -> int:
    """Ingress processes ``modelgate up`` runs when not told: one per ``INGRESS_CORES_PER_WORKER``
    cores, at least one."""
    return max(1, (cpus or 1) // INGRESS_CORES_PER_WORKER)


def ingress_spool_dir(spool_dir: str, index: int) -> str:
    """Event spool of ingress process ``index`` (from 1): the spool dir itself for the first
    (what a single ingress has always used, so its spool is replayed whatever the count),
    ``<spool dir>/replica-<index>`` for the others; empty when there is no spool."""
    if not spool_dir or index == 1:
        return spool_dir
    return str(Path(spool_dir) / f"replica-{index}")


def orphan_spools(spool_dir: str, workers: int) -> list[Path]:
    """Spools of ingress processes beyond ``workers`` that still hold events (of an earlier run
    with more processes): replayed only when that many run again."""
    if not spool_dir:
        return []
    found = []
    for path in sorted(Path(spool_dir).glob("replica-*")):
        index = path.name.removeprefix("replica-")
        if index.isdigit() and int(index) > workers and any(path.glob("events-*.spool")):
            found.append(path)
    return found


@dataclass
class PortUse:
    """A port the stack will listen on, and the setting that moves it."""

    service: str
    host: str
    port: int
    setting: str


def planned_ports(settings: StackSettings) -> list[PortUse]:
    uses = []
    if settings.embedded_clickhouse:
        uses.append(
            PortUse(
                "embedded ClickHouse",
                "127.0.0.1",
                settings.clickhouse_server_port,
                "MODELGATE_CLICKHOUSE_SERVER_PORT",
            )
        )
    uses += [
        PortUse(
            "management API",
            settings.management_host,
            settings.management_port,
            "MODELGATE_MANAGEMENT_PORT",
        ),
        PortUse(
            "metrics-consumer metrics",
            settings.consumer_metrics_host,
            settings.consumer_metrics_port,
            "MODELGATE_CONSUMER_METRICS_PORT",
        ),
    ]
    for i in range(settings.stack_predictors):
        uses.append(
            PortUse(
                f"predictor-{i + 1} metrics",
                settings.predictor_metrics_host,
                settings.predictor_metrics_port + i,
                "MODELGATE_PREDICTOR_METRICS_PORT"
                + (f" (predictor {i + 1} uses it + {i})" if i else ""),
            )
        )
    uses.append(
        PortUse("ingress", settings.ingress_host, settings.ingress_port, "MODELGATE_INGRESS_PORT")
    )
    return uses


def check_ports(settings: StackSettings) -> str | None:
    """None when every port of the stack is free, else one line naming the first problem."""
    seen: dict[int, PortUse] = {}
    for use in planned_ports(settings):
        if use.port in seen:
            other = seen[use.port]
            return (
                f"port {use.port} is set for both {other.service} ({other.setting}) and "
                f"{use.service} ({use.setting}); give one of them another port"
            )
        seen[use.port] = use
        if port_taken(use.host, use.port):
            return (
                f"port {use.port} ({use.service}) is already in use on {use.host}; "
                f"stop what uses it or set {use.setting} to another port"
            )
    return None


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


Probe = Callable[[aiohttp.ClientSession, "ServiceSpec", int], Awaitable[bool]]


@dataclass
class ServiceSpec:
    """One supervised child: its command, environment and how to tell it is ready.

    ``health_url`` must answer 200 with ``{"service": service, "instance_id": instance_id}`` (the
    ids the supervisor gave it in ``env``); ``ready_url`` (optional) must then answer 200 with
    ``ready_field`` true. ``listen_port`` without a health URL: ready when that port's listener
    belongs to the child itself (the embedded ClickHouse).
    """

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    service: str = ""
    instance_id: str = ""
    health_url: str | None = None
    ready_url: str | None = None
    ready_field: str | None = None
    listen_port: int | None = None
    unix_socket: str | None = None
    """Where ``health_url`` and ``ready_url`` are asked (their host is then ignored): a process
    that shares its TCP port with others is reached as itself only there."""
    group: str = ""
    """Children of one group (the predictors) are stopped together."""


async def _get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url, allow_redirects=False) as response:
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = None
        return response.status, body


def _owns_port(pid: int, port: int) -> bool:
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
        for member in family:
            for conn in member.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return True
    except psutil.Error:
        return False
    return False


async def identity_ready(session: aiohttp.ClientSession, spec: ServiceSpec, pid: int) -> bool:
    """Whether the child answers as itself (name and instance id), and is ready if asked."""
    if spec.health_url is None:
        if spec.listen_port is None:
            return True
        return _owns_port(pid, spec.listen_port)
    if spec.unix_socket is not None:
        if not Path(spec.unix_socket).is_socket():
            return False
        async with aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=spec.unix_socket), timeout=session.timeout
        ) as own:
            return await _identity_ready(own, spec)
    return await _identity_ready(session, spec)


async def _identity_ready(session: aiohttp.ClientSession, spec: ServiceSpec) -> bool:
    assert spec.health_url is not None
    try:
        status, body = await _get_json(session, spec.health_url)
        if status != 200 or not isinstance(body, dict):
            return False
        if body.get("service") != spec.service or body.get("instance_id") != spec.instance_id:
            return False
        if spec.ready_url is None:
            return True
        status, body = await _get_json(session, spec.ready_url)
        if status != 200 or not isinstance(body, dict):
            return False
        return spec.ready_field is None or bool(body.get(spec.ready_field))
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


@dataclass
class _Child:
    spec: ServiceSpec
    process: asyncio.subprocess.Process
    watch: asyncio.Task[None] | None = None
    stopping: bool = False


class Supervisor:
    """Runs children, prefixes their output, restarts the ones that die, stops them all.

    With ``log_dir`` each child's output goes to ``<log_dir>/<name>.log`` instead of stdout.
    """

    def __init__(self, *, max_restarts: int = 5, log_dir: Path | None = None) -> None:
        self._children: dict[str, _Child] = {}
        self._pumps: list[asyncio.Task[None]] = []
        self._order: list[str] = []
        self._stopping = False
        self._max_restarts = max_restarts
        self._log_dir = log_dir
        self.failed = asyncio.Event()
        self.failure: str = ""

    def pid(self, name: str) -> int:
        return self._children[name].process.pid

    def names(self) -> list[str]:
        return [name for name in self._order if name in self._children]

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
        output: int | IO[bytes] = asyncio.subprocess.PIPE
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            output = (self._log_dir / f"{spec.name}.log").open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=env,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if not isinstance(output, int):
                output.close()
        if process.stdout is not None:
            self._pumps.append(asyncio.create_task(self._pump(spec.name, process.stdout)))
        return process

    async def run_once(self, spec: ServiceSpec) -> int:
        """Run a one-shot child (e.g. migrations) to completion and return its exit code."""
        self._order.append(spec.name)
        process = await self._spawn(spec)
        return await process.wait()

    async def start(
        self, spec: ServiceSpec, ready_timeout: float, probe: Probe = identity_ready
    ) -> None:
        """Start a long-running child, wait until it answers as itself, then keep it alive."""
        if spec.name not in self._order:
            self._order.append(spec.name)
        process = await self._spawn(spec)
        child = _Child(spec, process)
        self._children[spec.name] = child
        deadline = time.monotonic() + ready_timeout
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not await probe(session, spec, process.pid):
                if process.returncode is not None:
                    raise RuntimeError(
                        f"{spec.name} exited with {process.returncode} at start "
                        f"(see its log{'' if self._log_dir else ' above'})"
                    )
                if time.monotonic() > deadline:
                    what = spec.health_url or f"port {spec.listen_port}"
                    if spec.ready_url:
                        what += f" and {spec.ready_url} ({spec.ready_field})"
                    raise RuntimeError(
                        f"{spec.name} did not answer as itself, ready, at {what} "
                        f"in {ready_timeout:.0f}s"
                    )
                await asyncio.sleep(0.2)
        child.watch = asyncio.create_task(self._watch(child))

    async def _watch(self, child: _Child) -> None:
        restarts: list[float] = []
        spec = child.spec
        while True:
            code = await child.process.wait()
            if self._stopping or child.stopping:
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
            if self._stopping or child.stopping:
                return
            child.process = await self._spawn(spec)

    async def stop_service(self, name: str, timeout: float = 15.0) -> None:
        """SIGTERM one child (not restarted), SIGKILL it if it is still there after timeout."""
        child = self._children.pop(name, None)
        if child is None:
            return
        child.stopping = True
        process = child.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                log.warning("%s did not stop in %ss; killing it", name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if child.watch is not None:
            child.watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await child.watch

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop every child in reverse start order (one group at a time, a group together)."""
        self._stopping = True
        names = list(reversed(self.names()))
        while names:
            group = self._children[names[0]].spec.group
            batch = [names.pop(0)]
            while group and names and self._children[names[0]].spec.group == group:
                batch.append(names.pop(0))
            await asyncio.gather(*(self.stop_service(name, timeout) for name in batch))
        for task in self._pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2.0)


def modelgate_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelgate.cli", *args]


def _local(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host


def service_env(settings: StackSettings, clickhouse_url: str) -> dict[str, str]:
    """What every service of the stack is given (shared settings and the stack's paths)."""
    return {
        "MODELGATE_NAMESPACE": settings.namespace,
        "MODELGATE_RABBITMQ_URL": settings.rabbitmq_url,
        "MODELGATE_CLICKHOUSE_URL": clickhouse_url,
        "MODELGATE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "MODELGATE_MODEL_STORE": str(settings.model_store),
        "MODELGATE_DATABASE_URL": settings.database_url,
        "MODELGATE_STACK_DATA_DIR": str(settings.stack_data_dir),
        "MODELGATE_MANAGEMENT_DATA_DIR": str(settings.management_data_dir),
        "MODELGATE_PUBLIC_INGRESS_URL": settings.public_ingress_url,
        "MODELGATE_INGRESS_PORT": str(settings.ingress_port),
        "MODELGATE_MANAGEMENT_PORT": str(settings.management_port),
    }


def build_services(settings: StackSettings, clickhouse_url: str) -> list[ServiceSpec]:
    """The long-running services, in start order: the management API (it owns the registry),
    the consumer, the predictors, and ingress last (it is ready only when a predictor consumes)."""
    common = service_env(settings, clickhouse_url)
    run = secrets.token_hex(3)
    management = f"http://{_local(settings.management_host)}:{settings.management_port}"
    management_id = f"management-api-{run}"
    services = [
        ServiceSpec(
            "management-api",
            modelgate_argv("management-api"),
            {**common, "MODELGATE_MANAGEMENT_ID": management_id},
            service="management-api",
            instance_id=management_id,
            health_url=f"{management}/health",
        )
    ]
    consumer_id = f"metrics-consumer-{run}"
    consumer = f"http://{_local(settings.consumer_metrics_host)}:{settings.consumer_metrics_port}"
    services.append(
        ServiceSpec(
            "metrics-consumer",
            modelgate_argv("metrics-consumer"),
            {
                **common,
                "MODELGATE_CONSUMER_ID": consumer_id,
                "MODELGATE_CONSUMER_METRICS_PORT": str(settings.consumer_metrics_port),
            },
            service="metrics-consumer",
            instance_id=consumer_id,
            health_url=f"{consumer}/health",
        )
    )
    for i in range(settings.stack_predictors):
        port = settings.predictor_metrics_port + i
        predictor_id = f"predictor-{i + 1}-{run}"
        host = _local(settings.predictor_metrics_host)
        services.append(
            ServiceSpec(
                f"predictor-{i + 1}",
                modelgate_argv("predictor"),
                {
                    **common,
                    "MODELGATE_PREDICTOR_ID": predictor_id,
                    "MODELGATE_PREDICTOR_METRICS_PORT": str(port),
                },
                service="predictor",
                instance_id=predictor_id,
                health_url=f"http://{host}:{port}/health",
                group="predictors",
            )
        )
    services += ingress_services(settings, common, run)
    return services


def ingress_services(
    settings: StackSettings, common: dict[str, str], run: str
) -> list[ServiceSpec]:
    """The ingress processes (one group, started together): one as it always was, or N sharing
    the port with ``SO_REUSEPORT``, each with its own instance id (so its own reply queue and
    rate-limit share), its own event spool (replayed by whichever process has its index after a
    restart) and its own Unix socket where the supervisor asks its ``/health`` and ``/ready``."""
    workers = max(1, settings.stack_ingress_workers)
    ingress = f"http://{_local(settings.ingress_host)}:{settings.ingress_port}"
    spool = settings.ingress_events_spool_dir or ""
    specs = []
    for index in range(1, workers + 1):
        single = workers == 1
        ingress_id = f"ingress-{run}" if single else f"ingress-{index}-{run}"
        env = {
            **common,
            "MODELGATE_INGRESS_ID": ingress_id,
            # Answered requests' events outlive a crash of ingress (replayed at its restart);
            # set it empty to keep them in memory only.
            "MODELGATE_INGRESS_EVENTS_SPOOL_DIR": ingress_spool_dir(spool, index),
        }
        socket_path: str | None = None
        if not single:
            socket_path = str(ingress_socket(settings, index))
            env["MODELGATE_INGRESS_REUSE_PORT"] = "true"
            env["MODELGATE_INGRESS_ADMIN_SOCKET"] = socket_path
        specs.append(
            ServiceSpec(
                "ingress" if single else f"ingress-{index}",
                modelgate_argv("ingress"),
                env,
                service="ingress",
                instance_id=ingress_id,
                health_url=f"{ingress}/health",
                ready_url=f"{ingress}/ready",
                ready_field="predictors_online",
                unix_socket=socket_path,
                group="ingress",
            )
        )
    return specs


def ingress_socket(settings: StackSettings, index: int) -> Path:
    """Unix socket of ingress process ``index``: in the (private) data dir, or in a private
    temporary directory when that path would be too long for a socket (108 bytes)."""
    path = (settings.stack_data_dir / "run" / f"ingress-{index}.sock").absolute()
    if len(str(path)) > 100:
        global _SOCKET_DIR
        if _SOCKET_DIR is None:
            _SOCKET_DIR = Path(tempfile.mkdtemp(prefix="modelgate-"))
        path = _SOCKET_DIR / f"ingress-{index}.sock"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


_SOCKET_DIR: Path | None = None


def clickhouse_spec(settings: StackSettings) -> tuple[ServiceSpec, str]:
    """The embedded ClickHouse child and the URL (with ``default``'s password) services use."""
    assert settings.clickhouse_server_data_dir is not None
    data_dir = settings.clickhouse_server_data_dir
    port = settings.clickhouse_server_port
    # The server's `default` needs a password: the one in its data directory (made here on the
    # first start), handed to every service in MODELGATE_CLICKHOUSE_URL.
    url = with_credentials(
        f"http://127.0.0.1:{port}/", "default", ensure_default_password(data_dir)
    )
    argv = modelgate_argv(
        "clickhouse", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)
    )
    return ServiceSpec("clickhouse", argv, listen_port=port), url


def summary(settings: StackSettings, urls: dict[str, Any]) -> str:
    lines = [
        "",
        "modelgate is up.",
        f"  dashboard + management API  {urls['dashboard_url']}",
        f"  prediction ingress          {urls['ingress_url']}/api/predict/<api_id>"
        f" ({settings.stack_ingress_workers} process"
        f"{'es' if settings.stack_ingress_workers > 1 else ''})",
        f"  ClickHouse (analysts)       {urls['clickhouse_url'].split('@')[-1]} "
        "(read-only user: analyst)",
        f"  data dir                    {settings.stack_data_dir}",
    ]
    assert settings.management_data_dir is not None
    admin_file = settings.management_data_dir / ADMIN_PASSWORD_FILE
    if admin_file.exists():
        lines.append(f"  first admin's password      in {admin_file} (0600)")
    lines += ["Ctrl-C stops everything.", "", ""]
    return "\n".join(lines)


async def run_stack(
    settings: StackSettings, *, demo: bool, reset_demo: bool = False, ready_file: Path | None
) -> int:
    settings.resolve_paths()
    problem = await check_rabbitmq(settings.rabbitmq_url)
    if problem:
        sys.stderr.write(problem + "\n")
        return 1
    problem = check_ports(settings)
    if problem:
        sys.stderr.write(f"modelgate up: {problem}\n")
        return 1
    private_dir(settings.stack_data_dir)  # 0700: it holds the metadata DB and the secrets
    if restrict_existing(settings.stack_data_dir):
        log.warning("data dir %s was readable by others; now 0700", settings.stack_data_dir)
    supervisor = Supervisor()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    clickhouse_url = settings.clickhouse_url
    try:
        if settings.embedded_clickhouse:
            spec, clickhouse_url = clickhouse_spec(settings)
            await supervisor.start(spec, settings.stack_ready_timeout_s)
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
        services = build_services(settings, clickhouse_url)
        for spec in services:
            if stop.is_set():
                return 1
            if spec.group != "ingress":
                await supervisor.start(spec, settings.stack_ready_timeout_s)
        for orphan in orphan_spools(
            settings.ingress_events_spool_dir or "", settings.stack_ingress_workers
        ):
            log.warning(
                "%s holds request events of an ingress process this run does not have; they are "
                "sent when the stack runs with that many ingress workers again",
                orphan,
            )
        # Ready when every ingress process is (each asked on its own socket when several).
        await asyncio.gather(
            *(
                supervisor.start(spec, settings.stack_ready_timeout_s)
                for spec in services
                if spec.group == "ingress"
            )
        )
        management = f"http://{_local(settings.management_host)}:{settings.management_port}"
        urls = {
            "dashboard_url": f"{management}/",
            "management_url": management,
            "ingress_url": settings.public_ingress_url,
            "clickhouse_url": clickhouse_url,
            "namespace": settings.namespace,
            "data_dir": str(settings.stack_data_dir),
            "ingress_workers": settings.stack_ingress_workers,
        }
        if demo:
            demo_code = await supervisor.run_once(
                ServiceSpec(
                    "demo",
                    modelgate_argv("demo", *(["--reset"] if reset_demo else [])),
                    {
                        **service_env(settings, clickhouse_url),
                        "MODELGATE_MANAGEMENT_HOST": settings.management_host,
                    },
                )
            )
            if demo_code != 0:
                log.warning("the demo step failed (exit %s); the stack keeps running", demo_code)
        if ready_file is not None:
            # It carries clickhouse_url with the `default` password: private, like the secrets.
            ready_file.unlink(missing_ok=True)
            create_private_file(ready_file, json.dumps(urls).encode())
        sys.stdout.write(summary(settings, urls))
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
        sys.stdout.flush()
        await supervisor.stop()


class StackProcess:
    """``modelgate up`` as a child process (for the tests' stack fixture and the benches).

    ``start`` waits for its ready file and returns what it holds; ``stop`` sends SIGTERM, the same
    clean stop as Ctrl-C.
    """

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        args: tuple[str, ...] = (),
        cwd: Path | None = None,
    ) -> None:
        self.env = env
        self.args = args
        self.cwd = cwd
        self.ready_file = workdir / "ready.json"
        self.log_path = workdir / "stack.log"
        self.process: subprocess.Popen[bytes] | None = None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout: float = 240.0) -> dict[str, Any]:
        """Start it, wait until it is ready; ``RuntimeError`` with its log's tail if it is not."""
        self.ready_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                [*modelgate_argv("up", "--ready-file", str(self.ready_file)), *self.args],
                env=self.env,
                cwd=self.cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.stop()
                raise RuntimeError(
                    f"`modelgate up` did not become ready (exit {code}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.25)
        ready: dict[str, Any] = json.loads(self.ready_file.read_text())
        return ready

    def stop(self, timeout: float = 90.0) -> int | None:
        """SIGTERM, wait for the clean stop (SIGKILL after ``timeout``); its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelgate up", description=__doc__.splitlines()[0])
    parser.add_argument("--predictors", type=int, help="number of predictor workers")
    parser.add_argument(
        "--ingress-workers",
        type=int,
        help="number of ingress processes sharing the ingress port (default: one per "
        f"{INGRESS_CORES_PER_WORKER} cores, at least one)",
    )
    parser.add_argument("--demo", action="store_true", help="run `modelgate demo` once it is up")
    parser.add_argument(
        "--reset",
        action="store_true",
        help="with --demo: new demo password and API key (they are kept across runs otherwise)",
    )
    parser.add_argument("--ready-file", type=Path, help="write the stack's URLs here when ready")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[up] %(levelname)s %(message)s")
    settings = StackSettings()
    if args.predictors is not None:
        settings.stack_predictors = args.predictors
    if args.ingress_workers is not None:
        if args.ingress_workers < 1:
            parser.error("--ingress-workers must be at least 1")
        settings.stack_ingress_workers = args.ingress_workers
    return asyncio.run(
        run_stack(settings, demo=args.demo, reset_demo=args.reset, ready_file=args.ready_file)
    )
