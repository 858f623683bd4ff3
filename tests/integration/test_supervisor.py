"""`modelgate up` tells the truth: taken ports stop it with the setting to change, a service is
ready only when it answers as itself, every port and path setting is honoured, the demo keeps its
password and key across runs, and the stop order lets ingress drain before its predictors go."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import clickhouse_connect
import orjson
import pytest
from aiohttp import web

from infra.localnet import free_port
from infra.topology import Topology, delete_topology
from modelgate.stack import ServiceSpec, StackProcess, Supervisor


def up_env(rabbitmq_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a `modelgate up` on free, non-default ports and its own data dir."""
    ingress = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MODELGATE_") or key.startswith("MODELGATE_TEST_")
    }
    env.update(
        {
            "MODELGATE_NAMESPACE": f"sup-{uuid.uuid4().hex[:8]}",
            "MODELGATE_RABBITMQ_URL": rabbitmq_url,
            "MODELGATE_STACK_DATA_DIR": str(data_dir),
            "MODELGATE_CLICKHOUSE_SERVER_PORT": str(free_port()),
            "MODELGATE_INGRESS_PORT": str(ingress),
            "MODELGATE_PUBLIC_INGRESS_URL": f"http://127.0.0.1:{ingress}",
            "MODELGATE_MANAGEMENT_PORT": str(free_port()),
            "MODELGATE_PREDICTOR_METRICS_PORT": str(free_port()),
            "MODELGATE_CONSUMER_METRICS_PORT": str(free_port()),
            **extra,
        }
    )
    return env


def run_up(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelgate.cli", "up", "--predictors", "1", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def listener() -> Iterator[int]:
    """Another program's listener on a port (it accepts connections, as a web server would)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize(
    "setting",
    ["MODELGATE_MANAGEMENT_PORT", "MODELGATE_CLICKHOUSE_SERVER_PORT", "MODELGATE_INGRESS_PORT"],
)
def test_a_taken_port_stops_up_with_one_line_naming_it_and_its_setting(
    rabbitmq_url: str, tmp_path: Path, listener: int, setting: str
) -> None:
    """Nothing is started: exit 1, one line with the port and the variable that moves it."""
    env = up_env(rabbitmq_url, tmp_path / "data", **{setting: str(listener)})
    result = run_up(env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"port {listener}" in lines[0] and setting in lines[0]
    assert "modelgate is up" not in result.stdout
    assert "[clickhouse]" not in result.stdout and "[management-api]" not in result.stdout


def test_two_services_given_the_same_port_are_refused_before_start(
    rabbitmq_url: str, tmp_path: Path
) -> None:
    port = str(free_port())
    env = up_env(
        rabbitmq_url,
        tmp_path / "data",
        MODELGATE_INGRESS_PORT=port,
        MODELGATE_MANAGEMENT_PORT=port,
    )
    result = run_up(env)
    assert result.returncode == 1
    assert "MODELGATE_INGRESS_PORT" in result.stderr
    assert "MODELGATE_MANAGEMENT_PORT" in result.stderr


async def test_a_service_is_not_ready_when_another_program_answers_its_health_url() -> None:
    """Something else answers 200 on the port: the supervisor waits for the child's own name
    and instance id, and gives up saying so instead of calling it ready."""

    async def foreign_health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", foreign_health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    supervisor = Supervisor()
    try:
        spec = ServiceSpec(
            "management-api",
            [sys.executable, "-c", "import time; time.sleep(120)"],
            service="management-api",
            instance_id="the-one-we-started",
            health_url=f"http://127.0.0.1:{port}/health",
        )
        with pytest.raises(RuntimeError, match="did not answer as itself"):
            await supervisor.start(spec, ready_timeout=3)
    finally:
        await supervisor.stop(timeout=10)
        await runner.cleanup()


SIGTERM_RECORDER = textwrap.dedent(
    """
    import signal, sys, time
    def stop(*_):
        with open(sys.argv[1], "a") as out:
            out.write(sys.argv[2] + "\\n")
        time.sleep(0.3)  # a drain takes a moment: the next group must wait for it
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(0.1)
    """
)


async def test_stop_order_is_ingress_first_then_predictors_and_consumer_then_the_rest(
    tmp_path: Path,
) -> None:
    """Children stop in reverse start order, each group after the one before has exited."""
    record = tmp_path / "stopped.txt"
    supervisor = Supervisor(log_dir=tmp_path)
    names = ["clickhouse", "management-api", "metrics-consumer", "predictor-1", "predictor-2"]
    names.append("ingress")
    try:
        for name in names:
            group = "predictors" if name.startswith("predictor") else ""
            argv = [sys.executable, "-c", SIGTERM_RECORDER, str(record), name]
            await supervisor.start(ServiceSpec(name, argv, group=group), ready_timeout=30)
        await asyncio.sleep(1.0)  # the children installed their handlers
    finally:
        await supervisor.stop(timeout=20)
    order = record.read_text().split()
    assert order[0] == "ingress"
    assert set(order[1:3]) == {"predictor-1", "predictor-2"}
    assert order[3:] == ["metrics-consumer", "management-api", "clickhouse"]
    assert len(order) == len(names)


async def _delete_namespace(url: str, namespace: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        await delete_topology(await connection.channel(), Topology(namespace))
    finally:
        await connection.close()


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null")


def _login(management: str, username: str, password: str) -> int:
    request = urllib.request.Request(
        f"{management}/api/auth/token",
        data=orjson.dumps({"username": username, "password": password}),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_up_honours_every_port_and_the_data_dir_and_keeps_its_database_across_restarts(
    rabbitmq_url: str, tmp_path: Path
) -> None:
    """On non-default ports and a data dir of its own: the embedded ClickHouse listens on
    MODELGATE_CLICKHOUSE_SERVER_PORT, the SQLite DB, model store, ClickHouse data and secrets are
    in MODELGATE_STACK_DATA_DIR (0600), each service answers its /health as itself on its port;
    a second `up --demo` on the same data dir keeps the demo password and key, `--reset` changes
    them."""
    data = tmp_path / "data"
    env = up_env(rabbitmq_url, data)
    management = f"http://127.0.0.1:{env['MODELGATE_MANAGEMENT_PORT']}"
    ingress = env["MODELGATE_PUBLIC_INGRESS_URL"]
    try:
        up = StackProcess(env, tmp_path, args=("--predictors", "1", "--demo"))
        try:
            ready = up.start(timeout=400)
            ch_port = env["MODELGATE_CLICKHOUSE_SERVER_PORT"]
            assert f"127.0.0.1:{ch_port}" in ready["clickhouse_url"]
            with urllib.request.urlopen(f"http://127.0.0.1:{ch_port}/ping", timeout=10) as r:
                assert r.status == 200
            for url, service in [
                (f"{management}/health", "management-api"),
                (f"{ingress}/health", "ingress"),
                (f"http://127.0.0.1:{env['MODELGATE_PREDICTOR_METRICS_PORT']}/health", "predictor"),
                (
                    f"http://127.0.0.1:{env['MODELGATE_CONSUMER_METRICS_PORT']}/health",
                    "metrics-consumer",
                ),
            ]:
                status, body = _get(url)
                assert status == 200 and body["service"] == service, (url, body)
            status, body = _get(f"{ingress}/ready")
            assert status == 200 and body["predictors_online"] is True
            for path in ["modelgate.db", "admin-password", "demo-password", "demo-api-key"]:
                assert (data / path).stat().st_mode & 0o777 == 0o600, path
            assert (data / "clickhouse" / "default_password").is_file()
            assert any((data / "models").iterdir())  # the demo model was stored there
            admin = (data / "admin-password").read_text().strip()
            assert _login(management, "admin", admin) == 200
            password = (data / "demo-password").read_text().strip()
            key = (data / "demo-api-key").read_text().strip()
            assert _login(management, "demo", password) == 200
            assert f"password is in {data / 'admin-password'}" in up.log_tail(200_000)
        finally:
            assert up.stop() == 0, up.log_tail()

        # Restarted on the same data dir: the database and the admin's password were kept (a
        # demo run again keeps its key and password too: tests/e2e/test_management_stack.py);
        # `--reset` reaches the demo, whose password and key change.
        reset = StackProcess(env, tmp_path, args=("--predictors", "1", "--demo", "--reset"))
        try:
            reset.start(timeout=400)
            assert (data / "admin-password").read_text().strip() == admin
            assert _login(management, "admin", admin) == 200
            assert (data / "demo-password").read_text().strip() != password
            assert (data / "demo-api-key").read_text().strip() != key
            assert _login(management, "demo", password) == 401
        finally:
            assert reset.stop() == 0, reset.log_tail()
    finally:
        asyncio.run(_delete_namespace(rabbitmq_url, env["MODELGATE_NAMESPACE"]))


@dataclass
class Answer:
    sent: float
    status: int
    took: float


class Load:
    """Clients posting to one API as fast as they are answered, until stopped; and a watcher of
    ingress's /ready that notes when it first said ready (with a predictor online)."""

    def __init__(self, url: str, key: str, body: dict[str, Any], base: str) -> None:
        self.url, self.key, self.body, self.base = url, key, body, base
        self.answers: list[Answer] = []
        self.ready_at: float | None = None
        self.stop = asyncio.Event()

    async def client(self, session: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                async with session.post(
                    self.url, json=self.body, headers={"X-API-Key": self.key}
                ) as response:
                    await response.read()
                    self.answers.append(Answer(sent, response.status, time.monotonic() - sent))
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.05)  # not accepted (not listening yet, or closed)

    async def watch_ready(self, session: aiohttp.ClientSession) -> None:
        while self.ready_at is None and not self.stop.is_set():
            checked = time.monotonic()
            with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
                async with session.get(f"{self.base}/ready") as response:
                    body = await response.json(content_type=None)
                    if response.status == 200 and body.get("predictors_online"):
                        self.ready_at = checked
                        return
            await asyncio.sleep(0.05)

    async def run(self, clients: int) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(
                self.watch_ready(session), *(self.client(session) for _ in range(clients))
            )


def _clickhouse_count(url: str, sql: str) -> int:
    client = clickhouse_connect.get_client(dsn=url)
    try:
        return int(client.command(sql))
    finally:
        client.close()


async def test_start_and_sigterm_under_load_answer_every_accepted_request_and_store_its_event(
    rabbitmq_url: str, tmp_path: Path
) -> None:
    """Clients keep calling the demo API while `modelgate up` starts and is then stopped with
    SIGTERM: once ingress says ready no answer is a 503, no accepted request waits for its
    deadline (no 504), requests in flight at the stop are answered with predictions (ingress
    drains before its predictors stop), and every answered request's event is stored."""
    data = tmp_path / "data"
    env = up_env(rabbitmq_url, data)
    ingress = env["MODELGATE_PUBLIC_INGRESS_URL"]
    try:
        first = StackProcess(env, tmp_path / "first", args=("--predictors", "1"))
        (tmp_path / "first").mkdir()
        try:
            await asyncio.to_thread(first.start, 400)
            demo = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "modelgate.cli",
                    "demo",
                    "--json",
                    "--rate-limit",
                    "1000000",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert demo.returncode == 0, demo.stderr
        finally:
            await asyncio.to_thread(first.stop)
        api = orjson.loads(demo.stdout)

        load = Load(api["api_url"], api["api_key"], api["example_request"], ingress)
        loading = asyncio.create_task(load.run(clients=6))
        second = StackProcess(env, tmp_path / "second", args=("--predictors", "1"))
        (tmp_path / "second").mkdir()
        try:
            await asyncio.to_thread(second.start, 400)
            status, health = await asyncio.to_thread(_get, f"{ingress}/health")
            await asyncio.sleep(3.0)
            stopping_at = time.monotonic()
            assert await asyncio.to_thread(second.stop) == 0, second.log_tail()
        finally:
            load.stop.set()
            await asyncio.wait_for(loading, 120)
        assert status == 200 and health["service"] == "ingress"
        assert load.ready_at is not None, "ingress never said ready"
        after_ready = [a for a in load.answers if a.sent >= load.ready_at]
        answered_in_stop = [a for a in after_ready if a.sent + a.took >= stopping_at]
        assert after_ready, second.log_tail()
        statuses = {a.status for a in after_ready}
        assert statuses == {200}, (statuses, answered_in_stop, second.log_tail())
        assert max(a.took for a in after_ready) < 5.0  # ingress's request deadline
        answered = len([a for a in load.answers if a.status == 200])

        third = StackProcess(env, tmp_path / "third", args=("--predictors", "1"))
        (tmp_path / "third").mkdir()
        try:
            ready = await asyncio.to_thread(third.start, 400)
            sql = (
                "SELECT count() FROM modelgate.request_events "
                f"WHERE ingress_id = '{health['instance_id']}' AND status_code = 200"
            )
            deadline = time.monotonic() + 120
            stored = -1
            while time.monotonic() < deadline:
                stored = await asyncio.to_thread(_clickhouse_count, ready["clickhouse_url"], sql)
                if stored >= answered:
                    break
                await asyncio.sleep(1.0)
            assert stored == answered, (stored, answered)
        finally:
            await asyncio.to_thread(third.stop)
    finally:
        await _delete_namespace(rabbitmq_url, env["MODELGATE_NAMESPACE"])
