"""Issue 13: modelgate against Seldon MLServer, CPU per request, scaling with processes.

``python -m bench compare`` (``make bench BENCH_ARGS=compare``) measures in one run, on 127.0.0.1:

1. modelgate as ``modelgate up`` starts it (its default ingress and predictor counts unless given),
   on its demo API (iris pipeline, rate limit raised), at 32 and 128 connections: req/s, p50/p99,
   non-2xx, the CPU time of every process of the stack per answered request (psutil, before the
   run and once its events have landed), and that every answered request's event is in ClickHouse.
2. Seldon MLServer (its own venv, ``bench/.venvs/mlserver``, installed on first use with
   mlserver-sklearn and our scikit-learn) serving the same fitted pipeline saved with joblib, with
   adaptive batching, same wrk settings, V2 body of the same row.
3. A scaling table: req/s and p99 at 32 connections for ingress x predictor processes.

Every process it starts is stopped on exit, Ctrl-C, SIGTERM or failure; the whole run is bounded
by ``--max-minutes``. Results: markdown tables on stdout and JSON in ``bench/out/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from infra.localnet import free_port, port_open, port_taken
from modelgate.stack import StackProcess, modelgate_argv

ROOT = Path(__file__).resolve().parents[1]
MLSERVER_VENV = ROOT / "bench" / ".venvs" / "mlserver"
OUT_DIR = ROOT / "bench" / "out"
MODEL_NAME = "iris"
STARTED = time.time()

LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"max_us\\": %d, \\"status_errors\\": %d, \\"connect_errors\\": %d, " ..
    "\\"read_errors\\": %d, \\"write_errors\\": %d, \\"timeouts\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"""


class BenchError(RuntimeError):
    """The bench cannot go on; the message says why and what to do."""


# --- wrk -------------------------------------------------------------------------------------


def parse_wrk(text: str) -> dict[str, Any]:
    """The figures the Lua ``done`` hook prints, with req/s and answered (2xx/3xx) requests."""
    match = re.search(r"^WRKJSON (\{.*\})$", text, re.M)
    if not match:
        raise BenchError(f"wrk printed no result line:\n{text[-2000:]}")
    result: dict[str, Any] = json.loads(match.group(1))
    seconds = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / seconds if seconds > 0 else 0.0
    result["answered"] = result["requests"] - result["status_errors"]
    result["socket_errors"] = sum(
        result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return result


def lua_script(body: str, headers: dict[str, str]) -> str:
    if "]]" in body or any("]]" in k + v for k, v in headers.items()):
        raise BenchError("a body or header holding ']]' cannot go into the Lua long string")
    lines = "\n".join(f'wrk.headers["{k}"] = [[{v}]]' for k, v in headers.items())
    return LUA.format(body=body, headers=lines)


@dataclass
class Cleanup:
    """What to stop at the end, newest first, whatever happens (also on SIGTERM and Ctrl-C)."""

    actions: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def push(self, name: str, action: Callable[[], None]) -> None:
        self.actions.append((name, action))

    def pop(self, name: str) -> None:
        """Run the named action now (and forget it)."""
        for i in range(len(self.actions) - 1, -1, -1):
            if self.actions[i][0] == name:
                _, action = self.actions.pop(i)
                action()
                return

    def run(self) -> None:
        while self.actions:
            name, action = self.actions.pop()
            try:
                action()
            except Exception as exc:
                sys.stderr.write(f"cleanup of {name} failed: {exc}\n")


def stop_tree(root: psutil.Process, known: list[psutil.Process], timeout: float = 10.0) -> None:
    """SIGTERM a process and its descendants (and those seen before), SIGKILL what is left."""
    procs: dict[int, psutil.Process] = {p.pid: p for p in known}
    with contextlib.suppress(psutil.Error):
        for child in root.children(recursive=True):
            procs[child.pid] = child
    procs[root.pid] = root
    alive = []
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            # Only what this run started: never a process older than it (e.g. the shared broker).
            if proc.is_running() and proc.create_time() >= STARTED - 1:
                proc.terminate()
                alive.append(proc)
    _, left = psutil.wait_procs(alive, timeout=timeout)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=5)


class Clock:
    """The run's deadline (``--max-minutes``): each step checks it before starting."""

    def __init__(self, minutes: float) -> None:
        self.end = time.monotonic() + minutes * 60

    def left(self) -> float:
        return self.end - time.monotonic()

    def need(self, seconds: float, what: str) -> None:
        if self.left() < seconds:
            raise BenchError(
                f"--max-minutes leaves {self.left():.0f} s, {what} needs about {seconds:.0f} s; "
                "stopping here"
            )


def run_wrk(
    url: str,
    body: str,
    headers: dict[str, str],
    duration: float,
    connections: int,
    threads: int,
    workdir: Path,
    cleanup: Cleanup,
) -> dict[str, Any]:
    """One wrk run (bounded: killed 30 s past its duration); its figures and wrk's own CPU."""
    script = workdir / f"wrk-{secrets.token_hex(3)}.lua"
    script.write_text(lua_script(body, headers))
    out_path = workdir / f"{script.stem}.out"
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "-s", str(script), url], stdout=out, stderr=subprocess.STDOUT
        )
    name = f"wrk-{process.pid}"
    cleanup.push(name, lambda: _kill(process))
    deadline = time.monotonic() + duration + 30
    rusage = None
    while rusage is None:
        pid, _status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            rusage = usage
            process.returncode = 0  # reaped here: Popen must not wait for it again
            break
        if time.monotonic() > deadline:
            cleanup.pop(name)
            raise BenchError(f"wrk did not finish within {duration + 30:.0f} s")
        time.sleep(0.1)
    cleanup.actions = [a for a in cleanup.actions if a[0] != name]
    result = parse_wrk(out_path.read_text(errors="replace"))
    result["wrk_cpu_s"] = rusage.ru_utime + rusage.ru_stime
    result["connections"] = connections
    return result


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.returncode is None and process.poll() is None:
        process.kill()
        process.wait(timeout=5)


# --- HTTP helpers (sync: the bench does one thing at a time) ----------------------------------


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """Status and body of one request; (0, b"") if nothing answers."""
    parts = urlsplit(url)
    headers = dict(headers or {})
    if parts.username is not None:
        credentials = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + b64encode(credentials).decode()
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        url = parts._replace(netloc=netloc).geturl()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.25)


# --- CPU accounting ----------------------------------------------------------------------------


def cpu_s(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return float("nan")
    return float(times.user + times.system)


def rabbitmq_processes() -> list[psutil.Process]:
    """The broker's Erlang VM (shared with anything else using the local RabbitMQ)."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "beam.smp"]


def service_of(process: psutil.Process, top: psutil.Process) -> str:
    """``ingress``, ``predictor``, ... from the command line of the process or its ancestor."""
    with contextlib.suppress(psutil.Error):
        proc: psutil.Process | None = process
        while proc is not None and proc.pid != top.pid:
            cmdline = proc.cmdline()
            if "modelgate.cli" in cmdline:
                index = cmdline.index("modelgate.cli") + 1
                name = cmdline[index] if index < len(cmdline) else "?"
                return name if proc.pid == process.pid else f"{name} helper"
            proc = proc.parent()
    return "other"


def stack_processes(up: psutil.Process) -> dict[str, psutil.Process]:
    """Every process of the stack by a stable name (``predictor-1``, ``ingress-2``, ...)."""
    found: dict[str, psutil.Process] = {"up (supervisor)": up}
    counts: dict[str, int] = {}
    with contextlib.suppress(psutil.Error):
        for child in sorted(up.children(recursive=True), key=lambda p: p.pid):
            service = service_of(child, up)
            counts[service] = counts.get(service, 0) + 1
            found[f"{service}-{counts[service]}"] = child
    return found


def with_rabbitmq(processes: dict[str, psutil.Process]) -> dict[str, psutil.Process]:
    """The stack's processes and the broker's, to watch (never to stop: it is shared)."""
    found = dict(processes)
    for i, beam in enumerate(rabbitmq_processes()):
        found[f"rabbitmq (beam.smp){'' if i == 0 else f'-{i + 1}'}"] = beam
    return found


GROUPS = [
    ("predictors", "predictor-"),
    ("ingress", "ingress"),
    ("ClickHouse", "clickhouse"),
    ("RabbitMQ", "rabbitmq"),
    ("consumer", "metrics-consumer"),
    ("management-api", "management-api"),
    ("supervisor", "up "),
]


def group_of(name: str) -> str:
    for group, prefix in GROUPS:
        if name.startswith(prefix):
            return group
    return "other"


@dataclass
class CpuWindow:
    """CPU seconds of each watched process between ``start`` and ``stop``."""

    processes: dict[str, psutil.Process]
    before: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = {name: cpu_s(p) for name, p in self.processes.items()}

    gone: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """CPU used by each; a process that ended meanwhile (or was not there) counts 0 and is
        listed in ``gone``."""
        for name, process in self.processes.items():
            used = cpu_s(process) - self.before[name]
            if math.isnan(used):
                self.gone.append(name)
                used = 0.0
            self.used[name] = used

    def per_request_us(self, answered: int) -> dict[str, float]:
        n = max(1, answered)
        return {name: used / n * 1e6 for name, used in self.used.items()}


# --- modelgate ---------------------------------------------------------------------------------


def ingress_workers_supported() -> bool:
    out = subprocess.run(
        [*modelgate_argv("up", "--help")], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return "--ingress-workers" in out.stdout


def free_block(size: int) -> int:
    """The first of ``size`` consecutive free ports (the predictors' metrics ports)."""
    for _ in range(50):
        base = free_port()
        if base + size < 65535 and not any(port_taken("127.0.0.1", base + i) for i in range(size)):
            return base
    raise BenchError(f"found no {size} consecutive free ports")


class ModelgateStack:
    """``modelgate up`` on a data dir of this run, on free ports and its own namespace."""

    def __init__(self, workdir: Path, cleanup: Cleanup) -> None:
        self.workdir = workdir
        self.cleanup = cleanup
        self.namespace = f"bench-compare-{secrets.token_hex(3)}"
        self.data_dir = workdir / "stack"
        self.up: StackProcess | None = None
        self.seen: list[psutil.Process] = []
        self.ready: dict[str, Any] = {}
        self.demo: dict[str, Any] = {}

    def env(self) -> dict[str, str]:
        return self._env

    def start(self, ingress_workers: int | None, predictors: int | None) -> None:
        """Start it; once more on new ports if the first start fails (on a shared machine another
        program can take a port between our check and the service's bind)."""
        try:
            self._start(ingress_workers, predictors)
        except BenchError as exc:
            print(f"  `modelgate up` failed ({str(exc).splitlines()[-2:]}); once more", flush=True)
            self.cleanup.pop("modelgate up")
            self.namespace = f"bench-compare-{secrets.token_hex(3)}"
            self.workdir = self.workdir.with_name(self.workdir.name + "-retry")
            self.data_dir = self.workdir / "stack"
            self._start(ingress_workers, predictors)

    def _start(self, ingress_workers: int | None, predictors: int | None) -> None:
        ingress = free_port()
        self._env = {
            **os.environ,
            "MODELGATE_STACK_DATA_DIR": str(self.data_dir),
            "MODELGATE_NAMESPACE": self.namespace,
            "MODELGATE_INGRESS_PORT": str(ingress),
            "MODELGATE_PUBLIC_INGRESS_URL": f"http://127.0.0.1:{ingress}",
            "MODELGATE_MANAGEMENT_PORT": str(free_port()),
            "MODELGATE_CONSUMER_METRICS_PORT": str(free_port()),
            "MODELGATE_CLICKHOUSE_SERVER_PORT": str(free_port()),
            "MODELGATE_PREDICTOR_METRICS_PORT": str(free_block(max(predictors or 2, 8))),
            "MODELGATE_LOG_LEVEL": "WARNING",
            # wrk's 128 connections come from one address and stand for many clients: the
            # per-address cap (100) would answer 28 of them 503.
            "MODELGATE_HTTP_PER_ADDRESS_EXEMPT_LOOPBACK": "true",
        }
        self._env.pop("MODELGATE_CLICKHOUSE_URL", None)  # the embedded one, as `modelgate up`
        args: list[str] = []
        if predictors is not None:
            args += ["--predictors", str(predictors)]
        if ingress_workers is not None:
            args += ["--ingress-workers", str(ingress_workers)]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.up = StackProcess(self._env, self.workdir, tuple(args), cwd=ROOT)
        self.cleanup.push("modelgate up", self.stop)
        try:
            self.ready = self.up.start(timeout=240)
        except RuntimeError as exc:
            raise BenchError(str(exc)) from exc
        assert self.up.process is not None
        top = psutil.Process(self.up.process.pid)
        self.seen = list(top.children(recursive=True))
        out = subprocess.run(
            [*modelgate_argv("demo", "--json", "--rate-limit", "1000000")],
            env=self._env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if out.returncode != 0:
            raise BenchError(f"modelgate demo failed:\n{out.stderr[-3000:]}")
        self.demo = json.loads(out.stdout)

    def processes(self) -> dict[str, psutil.Process]:
        """The processes of ``modelgate up`` (itself and its descendants, nothing else)."""
        assert self.up is not None and self.up.process is not None
        found = stack_processes(psutil.Process(self.up.process.pid))
        self.seen += [p for p in found.values() if p not in self.seen]
        return found

    def counts(self) -> dict[str, int]:
        names = list(self.processes())
        return {
            "ingress": sum(1 for n in names if re.fullmatch(r"ingress-\d+", n)),
            "predictors": sum(1 for n in names if re.fullmatch(r"predictor-\d+", n)),
        }

    def query(self, select: str, tail: str = "") -> str | None:
        """One query on the stack's ClickHouse (TSV), over the demo API's rows."""
        database = self._env.get("MODELGATE_CLICKHOUSE_DATABASE", "modelgate")
        query = (
            f"SELECT {select} FROM {database}.request_events "
            f"WHERE api_id = '{self.demo['api_id']}' {tail} FORMAT TSV"
        )
        status, body = http(self.ready["clickhouse_url"], query.encode(), timeout=30)
        return body.decode() if status == 200 else None

    def stored_events(self) -> tuple[int, int] | None:
        """``count()`` and ``uniqExact(event_id)`` of the demo API's rows in ClickHouse."""
        answer = self.query("count(), uniqExact(event_id)")
        if answer is None:
            return None
        count, unique = answer.split()
        return int(count), int(unique)

    def statuses(self) -> dict[int, int]:
        """Stored events of the demo API by HTTP status."""
        answer = self.query("status_code, count()", "GROUP BY status_code") or ""
        return {int(a): int(b) for a, b in (line.split() for line in answer.splitlines() if line)}

    def settled_events(self, at_least: int, timeout: float = 60.0) -> tuple[int, int] | None:
        """The stored count once it reaches ``at_least`` and stops changing (the consumer and
        ClickHouse flush after the answers)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            now = self.stored_events()
            if now is not None and now == last and now[0] >= at_least:
                return now
            last = now
            time.sleep(1.0)
        return last

    def estimator(self) -> Any:
        """The demo's fitted pipeline, as the predictors load it from the store."""
        from infra.model_store import ModelStore

        root = self.data_dir / "models"
        versions = sorted(
            (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        if not versions:
            raise BenchError(f"no model version in {root}")
        return ModelStore(root).load(versions[-1].name).estimator

    def stop(self) -> None:
        if self.up is None:
            return
        self.up.stop(timeout=60)
        if self.up.process is not None:
            with contextlib.suppress(psutil.Error):
                leftover = [p for p in self.seen if p.is_running()]
                if leftover:
                    stop_tree(leftover[0], leftover)
        self.up = None
        self.seen = []
        delete_namespace(self.namespace)


def delete_namespace(namespace: str) -> None:
    """Remove the queues and exchanges ``modelgate up`` declared for this run's namespace (its
    quorum queues would otherwise stay on the shared broker)."""
    import asyncio

    import aio_pika

    from infra.topology import Topology

    names = Topology(namespace)
    queues = names.queue_names() + names.service_queue_names()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name", "--no-table-headers"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()
        queues += [q for q in listed if q.startswith(f"{namespace}.")]

    async def delete() -> None:
        url = os.environ.get("MODELGATE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
        async with await aio_pika.connect(url, timeout=10) as connection:
            for queue in dict.fromkeys(queues):
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.queue_delete(queue)
            for exchange in names.exchange_names():
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.exchange_delete(exchange)

    try:
        asyncio.run(asyncio.wait_for(delete(), 90))
    except Exception as exc:  # the run's figures matter more than this tidy-up
        sys.stderr.write(f"could not delete namespace {namespace} on the broker: {exc!r}\n")


def measure_modelgate(
    stack: ModelgateStack, args: argparse.Namespace, connections: int, cleanup: Cleanup
) -> dict[str, Any]:
    """Warm up, wait for its events to land, then one measured wrk run with CPU and events."""
    url = stack.demo["api_url"]
    body = json.dumps(stack.demo["example_request"])
    headers = {"X-API-Key": stack.demo["api_key"]}
    run_wrk(url, body, headers, args.warmup, connections, args.threads, stack.workdir, cleanup)
    before = stack.settled_events(0)
    statuses_before = stack.statuses()
    window = CpuWindow(with_rabbitmq(stack.processes()))
    load = os.getloadavg()[0]
    window.start()
    started = time.monotonic()
    result = run_wrk(
        url, body, headers, args.duration, connections, args.threads, stack.workdir, cleanup
    )
    wanted = (before[0] if before else 0) + result["answered"]
    after = stack.settled_events(wanted)
    window.stop()
    result["processes_gone"] = window.gone
    result["window_s"] = time.monotonic() - started
    result["load_before"] = load
    result["cpu_us"] = window.per_request_us(result["answered"])
    result["cpu_total_us"] = sum(result["cpu_us"].values())
    # Shed requests (503) are answers too: CPU per any answer, beside CPU per 2xx answer.
    result["cpu_total_us_any_answer"] = sum(window.used.values()) / max(1, result["requests"]) * 1e6
    groups: dict[str, float] = {}
    for name, value in result["cpu_us"].items():
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + value
    result["cpu_groups_us"] = groups
    if before is not None and after is not None:
        result["events_stored"] = after[0] - before[0]
        result["events_unique"] = after[1] - before[1]
        statuses = {code: n - statuses_before.get(code, 0) for code, n in stack.statuses().items()}
        result["statuses_stored"] = {c: n for c, n in sorted(statuses.items()) if n}
        result["events_2xx"] = sum(n for c, n in statuses.items() if 200 <= c < 300)
    result["processes"] = stack.counts()
    return result


# --- MLServer ----------------------------------------------------------------------------------


def mlserver_python() -> Path:
    return MLSERVER_VENV / "bin" / "python"


def ensure_mlserver(clock: Clock) -> dict[str, str]:
    """MLServer + mlserver-sklearn (latest) with our scikit-learn and joblib, in their own venv
    (they conflict with our dependencies); installed once. Their versions."""
    import joblib
    import sklearn

    python = mlserver_python()
    probe = (
        "import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
        "['mlserver', 'mlserver-sklearn', 'scikit-learn', 'joblib', 'numpy', 'pandas', 'uvloop']}))"
    )

    def versions() -> dict[str, str] | None:
        if not python.exists():
            return None
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        if out.returncode != 0:
            return None
        found: dict[str, str] = json.loads(out.stdout)
        return found

    found = versions()
    if found and found["scikit-learn"] == sklearn.__version__ and found["uvloop"] < "0.22":
        return found
    clock.need(300, "installing MLServer")
    print(f"installing MLServer into {MLSERVER_VENV} (once) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(MLSERVER_VENV)], check=True, timeout=120)
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "mlserver",
            "mlserver-sklearn",
            f"scikit-learn=={sklearn.__version__}",
            f"joblib=={joblib.__version__}",
            # uvloop 0.22+ has no implicit loop in get_event_loop(), which MLServer 1.7's
            # inference workers call at start: they die at once with it.
            "uvloop<0.22",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    found = versions()
    if install.returncode != 0 or not found:
        raise BenchError(f"installing MLServer failed:\n{install.stderr[-3000:]}")
    return found


def v2_body(row: dict[str, Any]) -> str:
    """The V2 inference body of one row: a column per feature, decoded to a DataFrame."""
    inputs = [
        {
            "name": name,
            "shape": [1],
            "datatype": "FP64" if isinstance(value, float | int) else "BYTES",
            "data": [value],
        }
        for name, value in row.items()
    ]
    return json.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs})


class MLServer:
    """``mlserver start`` on a model dir with the joblib file and adaptive batching."""

    def __init__(self, workdir: Path, cleanup: Cleanup) -> None:
        self.workdir = workdir / "mlserver"
        self.cleanup = cleanup
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: list[psutil.Process] = []
        self.port = 0

    def prepare(self, estimator: Any, workers: int, batch_size: int, batch_time_ms: float) -> None:
        import joblib

        model_dir = self.workdir / MODEL_NAME
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(estimator, model_dir / "model.joblib")
        self.port = free_port()
        settings = {
            "debug": False,
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": workers,
        }
        (self.workdir / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": MODEL_NAME,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
            "max_batch_size": batch_size,
            "max_batch_time": batch_time_ms / 1000,
        }
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings))

    def start(self, body: str) -> None:
        log = (self.workdir / "mlserver.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
        env["PATH"] = f"{MLSERVER_VENV / 'bin'}:{env.get('PATH', '')}"
        self.process = subprocess.Popen(
            [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(self.workdir)],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.cleanup.push("mlserver", self.stop)
        ready = f"http://127.0.0.1:{self.port}/v2/models/{MODEL_NAME}/ready"

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise BenchError(f"MLServer exited; log:\n{self.log_tail()}")
            return http(ready)[0] == 200

        wait_until(up, 120, "MLServer ready")
        status, answer = http(
            self.url, body.encode(), {"Content-Type": "application/json"}, timeout=30
        )
        if status != 200:
            raise BenchError(f"MLServer answered {status}: {answer[:500]!r}")
        assert self.process is not None
        self.seen = [psutil.Process(self.process.pid)]
        self.seen += psutil.Process(self.process.pid).children(recursive=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/models/{MODEL_NAME}/infer"

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "mlserver.log").read_text(errors="replace")[-3000:]
        return ""

    def processes(self) -> dict[str, psutil.Process]:
        assert self.process is not None
        top = psutil.Process(self.process.pid)
        found = {"mlserver": top}
        with contextlib.suppress(psutil.Error):
            for i, child in enumerate(sorted(top.children(recursive=True), key=lambda p: p.pid)):
                found[f"mlserver child-{i + 1}"] = child
        self.seen += [p for p in found.values() if p not in self.seen]
        return found

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        leftover = [p for p in self.seen if p.is_running()]
        if leftover:
            stop_tree(leftover[0], leftover, timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


def measure_mlserver(
    server: MLServer, body: str, args: argparse.Namespace, connections: int, cleanup: Cleanup
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    run_wrk(
        server.url, body, headers, args.warmup, connections, args.threads, server.workdir, cleanup
    )
    window = CpuWindow(server.processes())
    load = os.getloadavg()[0]
    window.start()
    result = run_wrk(
        server.url, body, headers, args.duration, connections, args.threads, server.workdir, cleanup
    )
    window.stop()
    result["processes_gone"] = window.gone
    result["load_before"] = load
    result["cpu_us"] = window.per_request_us(result["answered"])
    result["cpu_total_us"] = sum(result["cpu_us"].values())
    # Shed requests (503) are answers too: CPU per any answer, beside CPU per 2xx answer.
    result["cpu_total_us_any_answer"] = sum(window.used.values()) / max(1, result["requests"]) * 1e6
    return result


# --- report ------------------------------------------------------------------------------------


def ms(us: float) -> str:
    return f"{us / 1000:.1f} ms"


def run_row(label: str, r: dict[str, Any]) -> str:
    cpu = f"{r['cpu_total_us']:.0f} µs" if "cpu_total_us" in r else "—"
    return (
        f"| {label} | {r['connections']} | {r['rps']:,.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} "
        f"| {r['status_errors']} | {r['socket_errors']} | {cpu} | {r['load_before']:.1f} |"
    )


def events_check(r: dict[str, Any]) -> str:
    """Whether every answered request's event is in ClickHouse, once, from the run's figures.

    wrk counts the answers it read before its end; the server may answer up to one request per
    connection more (in flight when wrk stopped), so 2xx rows may exceed wrk's 2xx count by that.
    """
    ok_2xx = r["requests"] - r["status_errors"]
    stored_2xx = r.get("events_2xx", r["events_unique"])
    landed = ok_2xx <= stored_2xx <= ok_2xx + r["connections"]
    unique = r["events_stored"] == r["events_unique"]
    statuses = ", ".join(f"{c}: {n:,}" for c, n in r.get("statuses_stored", {}).items())
    if stored_2xx < ok_2xx:
        verdict = "EVENTS MISSING"
    elif not landed:
        verdict = "MORE 2xx ROWS THAN ANSWERS IN FLIGHT COULD EXPLAIN"
    elif not unique:
        verdict = "DUPLICATE ROWS"
    else:
        verdict = "every answered request's event landed, once"
    return (
        f"wrk read {ok_2xx:,} 2xx and {r['status_errors']:,} other answers; stored during the run "
        f"{r['events_stored']:,} rows, {r['events_unique']:,} distinct event ids ({statuses}): "
        + verdict
    )


def report(results: dict[str, Any]) -> str:
    lines = ["", "### Side by side (wrk -t{threads}, {duration:g} s after {warmup:g} s warm-up)"]
    lines[-1] = lines[-1].format(**results["settings"])
    lines += [
        "",
        "| server | conns | req/s | p50 | p99 | non-2xx | socket errors | CPU / answered "
        "request (all its processes) | load before |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    main = results["modelgate"]
    for r in main["runs"]:
        lines.append(run_row(f"modelgate {main['label']}", r))
    for label, runs in results.get("mlserver", {}).get("runs", {}).items():
        for r in runs:
            lines.append(run_row(f"MLServer {label}", r))
    lines += ["", "CPU per answered request, modelgate, by process (µs):", ""]
    for r in main["runs"]:
        groups = ", ".join(
            f"{g} {v:.0f}" for g, v in sorted(r["cpu_groups_us"].items(), key=lambda x: -x[1])
        )
        lines.append(
            f"- {r['connections']} connections: total {r['cpu_total_us']:.0f} per 2xx answer "
            f"({r.get('cpu_total_us_any_answer', r['cpu_total_us']):.0f} per answer of any "
            f"status) = {groups}"
        )
        detail = ", ".join(f"{n} {v:.0f}" for n, v in r["cpu_us"].items() if v >= 0.5)
        gone = r.get("processes_gone") or []
        ended = f" (ended during the run, not counted: {', '.join(gone)})" if gone else ""
        lines.append(
            f"  - per process{ended}: {detail}; "
            f"wrk itself {r['wrk_cpu_s'] / max(1, r['answered']) * 1e6:.0f}"
        )
        if "events_stored" in r:
            lines.append(f"  - events: {events_check(r)}")
    if results.get("scaling"):
        lines += [
            "",
            f"### Scaling, {results['settings']['scaling_connections']} connections",
            "",
            "| ingress x predictors | req/s | p50 | p99 | non-2xx | CPU / request | load before |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in results["scaling"]:
            r = row["result"]
            lines.append(
                f"| {row['label']} | {r['rps']:,.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} "
                f"| {r['status_errors']} | {r['cpu_total_us']:.0f} µs | {r['load_before']:.1f} |"
            )
    verdict = results.get("targets")
    if verdict:
        lines += ["", "Targets: " + "; ".join(verdict)]
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[str]:
    out = []
    mg = {r["connections"]: r for r in results["modelgate"]["runs"]}
    best: dict[int, dict[str, Any]] = {}
    for runs in results.get("mlserver", {}).get("runs", {}).values():
        for r in runs:
            if r["connections"] not in best or r["rps"] > best[r["connections"]]["rps"]:
                best[r["connections"]] = r
    if 32 in mg and 32 in best:
        ratio = mg[32]["rps"] / best[32]["rps"]
        out.append(
            f"req/s at 32 connections {ratio:.2f}x MLServer's best "
            f"({'met' if ratio >= 3 else 'NOT met'}, ≥ 3x)"
        )
    if 32 in mg:
        p99 = mg[32]["p99_us"] / 1000
        out.append(
            f"p99 at 32 connections {p99:.1f} ms ({'met' if p99 <= 15 else 'NOT met'}, ≤ 15 ms)"
        )
        cpu = mg[32]["cpu_total_us"]
        out.append(
            f"whole-stack CPU per request {cpu:.0f} µs "
            f"({'met' if cpu <= 100 else 'NOT met'}, ≤ 100 µs)"
        )
    return out


# --- main --------------------------------------------------------------------------------------


def parse_config(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected INGRESSxPREDICTORS, e.g. 2x4")
    return int(match.group(1)), int(match.group(2))


def parse_mlserver(text: str) -> tuple[int, float]:
    match = re.fullmatch(r"(\d+):(\d+(?:\.\d+)?)", text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WORKERS:BATCH_MS, e.g. 2:10")
    return int(match.group(1)), float(match.group(2))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__)
    parser.add_argument("--duration", type=float, default=20, help="seconds of each measured run")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of wrk before each run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--connections", default="32,128", help="connection counts of the side-by-side runs"
    )
    parser.add_argument(
        "--ingress-workers",
        type=int,
        help="modelgate's ingress processes in the side-by-side runs (default: `modelgate up`'s)",
    )
    parser.add_argument(
        "--predictors",
        type=int,
        help="modelgate's predictor processes in the side-by-side runs (default: `modelgate up`'s)",
    )
    parser.add_argument(
        "--scaling",
        default="1x1,1x2,2x2,2x4,4x4",
        help="INGRESSxPREDICTORS configurations of the scaling table, comma-separated "
        "('' for none)",
    )
    parser.add_argument("--scaling-connections", type=int, default=32)
    parser.add_argument(
        "--mlserver",
        default="1:2,2:2,2:10",
        help="MLServer configurations to run, comma-separated WORKERS:BATCH_MS (parallel_workers "
        "and adaptive batching's max_batch_time; '' skips MLServer)",
    )
    parser.add_argument("--mlserver-batch-size", type=int, default=64, help="max_batch_size")
    parser.add_argument("--max-minutes", type=float, default=30, help="bound of the whole run")
    args = parser.parse_args(argv)
    args.connection_list = [int(c) for c in args.connections.split(",") if c.strip()]
    args.scaling_list = [parse_config(c) for c in args.scaling.split(",") if c.strip()]
    args.mlserver_list = [parse_mlserver(c) for c in args.mlserver.split(",") if c.strip()]
    return args


@contextlib.contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the run like Ctrl-C, so every ``finally`` cleans up."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run(args: argparse.Namespace, workdir: Path, cleanup: Cleanup, results: dict[str, Any]) -> None:
    """Fill ``results`` step by step (what was measured stays there if a later step fails)."""
    clock = Clock(args.max_minutes)
    broker = urlsplit(os.environ.get("MODELGATE_RABBITMQ_URL", "amqp://127.0.0.1:5672/"))
    if not port_open(broker.hostname or "127.0.0.1", broker.port or 5672):
        raise BenchError(
            "RabbitMQ does not answer: run ./infra/ensure_rabbitmq.sh (make bench does)"
        )
    needs_workers = any(i > 1 for i, _ in args.scaling_list) or args.ingress_workers is not None
    supported = ingress_workers_supported()
    if needs_workers and not supported:
        raise BenchError(
            "`modelgate up` has no --ingress-workers option (yet): run with one ingress, e.g. "
            "`python -m bench compare --scaling 1x1,1x2,1x4` and without --ingress-workers"
        )
    results.update(
        {
            "settings": {
                "threads": args.threads,
                "duration": args.duration,
                "warmup": args.warmup,
                "scaling_connections": args.scaling_connections,
            },
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "load_at_start": os.getloadavg(),
        }
    )
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        results["commit"] = subprocess.run(
            ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()[:100]
    mlserver_versions = ensure_mlserver(clock) if args.mlserver_list else {}
    per_run = args.warmup + args.duration + 15
    stack = ModelgateStack(workdir / "modelgate", cleanup)
    clock.need(60 + per_run * len(args.connection_list), "modelgate side by side")
    print("starting modelgate up ...", flush=True)
    stack.start(args.ingress_workers, args.predictors)
    counts = stack.counts()
    label = f"{counts['ingress']}x{counts['predictors']}"
    print(
        f"modelgate up: {counts['ingress']} ingress x {counts['predictors']} predictors", flush=True
    )
    runs = []
    for connections in args.connection_list:
        result = measure_modelgate(stack, args, connections, cleanup)
        print(
            f"  modelgate c{connections}: {result['rps']:,.0f} req/s p99 {ms(result['p99_us'])} "
            f"CPU {result['cpu_total_us']:.0f} µs/request",
            flush=True,
        )
        runs.append(result)
    results["modelgate"] = {"label": label, "runs": runs}
    estimator = stack.estimator()
    row = stack.demo["example_request"]
    cleanup.pop("modelgate up")
    if args.mlserver_list:
        results["mlserver"] = {"versions": mlserver_versions, "runs": {}}
        body = v2_body(row)
        results["mlserver"]["body"] = body
        for workers, batch_ms in args.mlserver_list:
            clock.need(40 + per_run * len(args.connection_list), "MLServer")
            label = (
                f"{workers} worker{'s' if workers > 1 else ''}, "
                f"batch ≤ {args.mlserver_batch_size} rows / {batch_ms:g} ms"
            )
            server = MLServer(workdir / f"mlserver-{workers}-{batch_ms:g}", cleanup)
            server.prepare(estimator, workers, args.mlserver_batch_size, batch_ms)
            print(f"starting MLServer ({label}) ...", flush=True)
            server.start(body)
            mlruns = []
            for connections in args.connection_list:
                result = measure_mlserver(server, body, args, connections, cleanup)
                print(
                    f"  MLServer {label} c{connections}: {result['rps']:,.0f} req/s "
                    f"p99 {ms(result['p99_us'])}",
                    flush=True,
                )
                mlruns.append(result)
            results["mlserver"]["runs"][label] = mlruns
            cleanup.pop("mlserver")
    results["scaling"] = []
    scaling_args = argparse.Namespace(**vars(args))
    for ingress, predictors in args.scaling_list:
        clock.need(60 + per_run, f"scaling {ingress}x{predictors}")
        stack = ModelgateStack(workdir / f"modelgate-{ingress}x{predictors}", cleanup)
        print(f"starting modelgate up, {ingress} ingress x {predictors} predictors ...", flush=True)
        stack.start(ingress if supported else None, predictors)
        result = measure_modelgate(stack, scaling_args, args.scaling_connections, cleanup)
        seen = result["processes"]
        if (seen["ingress"], seen["predictors"]) != (ingress, predictors):
            print(f"  (asked {ingress}x{predictors}, saw {seen['ingress']}x{seen['predictors']})")
        print(
            f"  {ingress}x{predictors}: {result['rps']:,.0f} req/s p99 {ms(result['p99_us'])}",
            flush=True,
        )
        results["scaling"].append(
            {"label": f"{seen['ingress']}x{seen['predictors']}", "result": result}
        )
        cleanup.pop("modelgate up")
    results["targets"] = targets(results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is missing: `apt-get install -y wrk` (see infra/bootstrap.sh)\n")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="modelgate-compare-"))
    cleanup = Cleanup()
    code = 1
    results: dict[str, Any] = {}
    try:
        with terminated_on_sigterm():
            run(args, workdir, cleanup, results)
            code = 0
    except BenchError as exc:
        sys.stderr.write(f"bench compare: {exc}\n")
        results["error"] = str(exc)
    except KeyboardInterrupt:
        sys.stderr.write("bench compare: interrupted; stopping what it started ...\n")
        results["error"] = "interrupted"
        code = 130
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            cleanup.run()
            if code == 0:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                sys.stderr.write(f"logs kept in {workdir}\n")
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    if "modelgate" in results:
        OUT_DIR.mkdir(exist_ok=True)
        out = OUT_DIR / f"compare-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
        out.write_text(json.dumps(results, indent=1, default=str))
        print(report(results))
        print(f"\n(JSON: {out}){' PARTIAL: ' + results['error'] if 'error' in results else ''}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
