"""Login throughput, and how the other routes answer during a login burst, before and after.

    .venv/bin/python -m bench login [--modes old,new] [--concurrency 50] [--duration 8]
                                    [--users 20] [--guesses 100]

Each mode runs its own management-api process on 127.0.0.1 (SQLite metadata DB in a temporary
folder, a fresh RabbitMQ namespace): ``new`` is the code as it is (argon2 in a bounded pool off
the event loop, failed logins throttled); ``old`` is the same code with the hashes run on the
event loop and no throttle, as before issue 9. Per mode:

1. idle: /health and GET /api/users/me probed one at a time (latency only);
2. burst: ``--concurrency`` clients log in back to back for ``--duration`` seconds (right
   passwords, ``--users`` accounts) while one prober keeps calling /health and /api/users/me;
3. guesser: ``--guesses`` wrong passwords in a row for one username, one at a time: how many
   were answered 401 (a password checked) and how many 429.

Prints logins/s, login latency and statuses, the probes' p50/p95/max, and the guesser's counts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from infra.localnet import free_port
from infra.topology import Topology, delete_topology
from modelgate.stack import ServiceSpec, Supervisor

ADMIN_PASSWORD = "bench-admin-password"


# --- the server side (a child process: python -m bench.login --serve MODE PORT) ----------------


def serve(mode: str, port: int) -> int:
    """Run the management API; in ``old`` mode hash on the event loop and throttle nothing."""
    from aiohttp import web

    from infra import http
    from infra.service import configure_logging
    from management_api.app import create_app
    from management_api.keys import ACCOUNTS
    from management_api.login_throttle import LoginThrottle, ThrottlePolicy
    from management_api.security import PasswordHashing
    from management_api.settings import ManagementSettings

    class OnTheLoop(PasswordHashing):
        """The behaviour before issue 9: argon2 called right on the event loop."""

        async def _run(self, function: Any, *args: str) -> Any:
            return function(*args)

    settings = ManagementSettings()
    configure_logging("WARNING")
    app = create_app(settings)

    async def old_behaviour(app: web.Application) -> None:
        accounts = app[ACCOUNTS]
        accounts.hashing.close()
        accounts.hashing = OnTheLoop(1)
        unlimited = ThrottlePolicy(per_username=10**9, per_address=10**9, max_queued=10**9)
        accounts.throttle = LoginThrottle(unlimited)

    if mode == "old":
        app.on_startup.append(old_behaviour)  # after the cleanup contexts made ACCOUNTS
    http.run_app(app, "127.0.0.1", port, settings)
    return 0


# --- the load side ---------------------------------------------------------------------------


@dataclass
class Timings:
    values: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def add(self, started: float, status: int = 200) -> None:
        self.values.append((time.perf_counter() - started) * 1000)
        self.statuses[status] += 1

    def summary(self) -> str:
        if not self.values:
            return "-"
        ordered = sorted(self.values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return (
            f"p50 {statistics.median(ordered):7.1f}  p95 {p95:7.1f}  max {ordered[-1]:7.1f} ms"
            f"  (n={len(ordered)}, statuses {dict(sorted(self.statuses.items()))})"
        )


class Server:
    """One management-api process of a mode, with its own DB, data dir and namespace, run by
    ``modelgate up``'s ``Supervisor`` (ready when its ``/health`` answers as itself)."""

    def __init__(self, mode: str, workdir: Path, rabbitmq_url: str) -> None:
        self.mode = mode
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.namespace = f"bench-login-{uuid.uuid4().hex[:8]}"
        root = workdir / mode
        env = {
            **os.environ,
            "MODELGATE_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'meta.db'}",
            "MODELGATE_MODEL_STORE": str(root / "models"),
            "MODELGATE_MANAGEMENT_DATA_DIR": str(root / "data"),
            "MODELGATE_MANAGEMENT_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MODELGATE_NAMESPACE": self.namespace,
            "MODELGATE_RABBITMQ_URL": rabbitmq_url,
            "MODELGATE_MANAGEMENT_ID": f"bench-login-{mode}",
        }
        self.spec = ServiceSpec(
            mode,
            [sys.executable, "-m", "bench.login", "--serve", mode, str(self.port)],
            env,
            service="management-api",
            instance_id=f"bench-login-{mode}",
            health_url=f"{self.url}/health",
        )
        self.supervisor = Supervisor(log_dir=workdir)  # the log: <workdir>/<mode>.log

    async def wait_ready(self, timeout: float = 60) -> None:
        await self.supervisor.start(self.spec, timeout)

    def rss_mb(self) -> float:
        with suppress(Exception):
            import psutil

            return float(psutil.Process(self.supervisor.pid(self.mode)).memory_info().rss) / 2**20
        return 0.0

    async def stop(self) -> None:
        await self.supervisor.stop(timeout=30)


async def call(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    """(status, body); status 0 when the connection failed (counted, not fatal)."""
    try:
        async with session.request(method, url, **kwargs) as response:
            return response.status, await response.json(content_type=None)
    except aiohttp.ClientError as exc:
        return 0, str(exc)


async def prepare(session: aiohttp.ClientSession, base: str, users: int) -> dict[str, str]:
    """The bench accounts; returns the admin's bearer header."""
    status, body = await call(
        session,
        "POST",
        base + "/api/auth/token",
        json={"username": "admin", "password": ADMIN_PASSWORD},
    )
    assert status == 200, body
    headers = {"Authorization": "Bearer " + body["access_token"]}
    for i in range(users):
        status, body = await call(
            session,
            "POST",
            base + "/api/users",
            headers=headers,
            json={"username": f"bench{i}", "password": f"bench{i}-password", "role": "user"},
        )
        assert status == 201, body
    return headers


async def probe(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    stop: asyncio.Event,
    health: Timings,
    me: Timings,
    interval_s: float = 0.1,
) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        status, _ = await call(session, "GET", base + "/health")
        health.add(started, status)
        started = time.perf_counter()
        status, _ = await call(session, "GET", base + "/api/users/me", headers=headers)
        me.add(started, status)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def run_mode(args: argparse.Namespace, server: Server) -> None:
    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        base = server.url
        headers = await prepare(session, base, args.users)
        what = {"old": "hashing on the event loop, no throttle", "new": "hashing pool + throttle"}
        print(f"\n== mode {server.mode}: {what.get(server.mode, server.mode)}")

        health, me = Timings(), Timings()
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(session, base, headers, stop, health, me))
        await asyncio.sleep(args.idle)
        stop.set()
        await prober
        print(f"idle      /health        {health.summary()}")
        print(f"idle      /api/users/me  {me.summary()}")

        statuses: Counter[int] = Counter()
        logins = Timings()
        deadline = time.perf_counter() + args.duration

        async def client(i: int) -> None:
            user = f"bench{i % args.users}"
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await call(
                    session,
                    "POST",
                    base + "/api/auth/token",
                    json={"username": user, "password": f"{user}-password"},
                )
                statuses[status] += 1
                if status == 200:
                    logins.add(started)
                elif status == 0:
                    await asyncio.sleep(0.05)  # a refused connection: do not spin

        health, me = Timings(), Timings()
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(session, base, headers, stop, health, me))
        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        stop.set()
        await prober
        ok = statuses.get(200, 0)
        print(
            f"burst     {args.concurrency} clients x {args.duration:.0f}s: {ok} logins in "
            f"{elapsed:.1f}s = {ok / elapsed:.1f}/s; statuses {dict(sorted(statuses.items()))} "
            "(0: connection error); "
            f"RSS {server.rss_mb():.0f} MB"
        )
        print(f"burst     login          {logins.summary()}")
        print(f"burst     /health        {health.summary()}")
        print(f"burst     /api/users/me  {me.summary()}")

        guesses: Counter[int] = Counter()
        started = time.perf_counter()
        for i in range(args.guesses):
            status, _ = await call(
                session,
                "POST",
                base + "/api/auth/token",
                json={"username": "bench0", "password": f"guess-{i}-{secrets.token_hex(4)}"},
            )
            guesses[status] += 1
        print(
            f"guesser   {args.guesses} wrong passwords in a row for one username in "
            f"{time.perf_counter() - started:.1f}s: {dict(sorted(guesses.items()))} "
            "(401 = a password was checked)"
        )


async def run(args: argparse.Namespace) -> None:
    rabbitmq_url = os.environ.get("MODELGATE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    workdir = Path(tempfile.mkdtemp(prefix="bench-login-"))
    load = os.getloadavg()
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPU, load {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    for mode in args.modes.split(","):
        server = Server(mode, workdir, rabbitmq_url)
        try:
            await server.wait_ready()
            await run_mode(args, server)
        finally:
            await server.stop()
            with suppress(Exception):
                connection = await aio_pika.connect(rabbitmq_url)
                await delete_topology(await connection.channel(), Topology(server.namespace))
                await connection.close()
    load = os.getloadavg()
    print(f"\nload after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; logs in {workdir}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        return serve(argv[1], int(argv[2]))
    parser = argparse.ArgumentParser(
        prog="python -m bench login",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--modes", default="old,new", help="old, new, or both (old,new)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of login burst")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle probing")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--guesses", type=int, default=100)
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 500 or not 0 < args.duration <= 120:
        parser.error("--concurrency must be 1..500 and --duration 0..120 s")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
