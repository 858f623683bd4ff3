"""``make conformance``: clickhouse-connect's own integration suite against the embedded server.

Builds the suite's venv (pinned in ``clickhouse-connect/requirements.txt``; reused while the pins
are unchanged), starts ``modelgate clickhouse`` on a free 127.0.0.1 port with a temporary data
directory and a generated ``default`` password, runs the suite (bounded in time) and compares its
failures with ``clickhouse-connect/expected-failures.txt``: what the chdb engine itself cannot do,
one reason per entry. Exit status 1 on any unexpected failure; an expected failure that now passes
is reported as a note (take it off the list).

    .venv/bin/python conformance/run_clickhouse_connect.py [extra pytest args]
    make conformance CONFORMANCE_ARGS="-k arrow"

Environment: CONFORMANCE_VENV (default .venv-conformance), CONFORMANCE_TIMEOUT (seconds
for the whole suite, default 1500), CONFORMANCE_WORKERS (pytest-xdist workers, default 2).
"""

from __future__ import annotations

import fnmatch
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "conformance" / "clickhouse-connect"
REQUIREMENTS = SUITE / "requirements.txt"
EXPECTED = SUITE / "expected-failures.txt"
PIP_TIMEOUT = 1200
SERVER_START_TIMEOUT = 90
PER_TEST_TIMEOUT = 120


@dataclass
class Outcome:
    """What the suite's JUnit report says."""

    passed: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.skipped)


@dataclass
class Expected:
    pattern: str
    reason: str


def log(text: str) -> None:
    print(f"conformance: {text}", flush=True)


def ensure_venv(venv: Path) -> Path:
    """The suite's venv, created (or re-created when the pins changed) from this Python."""
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating the suite's venv in {venv} (pinned in {REQUIREMENTS.relative_to(ROOT)})")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        check=True,
        timeout=PIP_TIMEOUT,
    )
    stamp.write_text(wanted)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    data_dir: Path, port: int, password: str, log_path: Path
) -> subprocess.Popen[bytes]:
    """``modelgate clickhouse`` on 127.0.0.1:port; returns once it answers /ping."""
    env = {**os.environ, "MODELGATE_CLICKHOUSE_SERVER_DEFAULT_PASSWORD": password}
    command = [sys.executable, "-m", "modelgate.cli", "clickhouse", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"the embedded server exited with {process.returncode}; see {log_path}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as reply:
                if reply.status == 200:
                    return process
        except OSError:
            time.sleep(0.3)
    stop_server(process)
    raise SystemExit(f"the embedded server did not answer /ping in {SERVER_START_TIMEOUT}s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_suite(
    python: Path, port: int, password: str, work: Path, junit: Path, extra: list[str]
) -> int:
    """pytest over the suite's integration tests (a copy, so the tree stays clean)."""
    shutil.copytree(SUITE / "tests", work / "tests")
    shutil.copy(SUITE / "pyproject.toml", work / "pyproject.toml")
    env = {
        **os.environ,
        "CLICKHOUSE_CONNECT_TEST_HOST": "127.0.0.1",
        "CLICKHOUSE_CONNECT_TEST_PORT": str(port),
        "CLICKHOUSE_CONNECT_TEST_USER": "default",
        "CLICKHOUSE_CONNECT_TEST_PASSWORD": password,
        "CLICKHOUSE_CONNECT_TEST_DOCKER": "False",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    }
    workers = os.environ.get("CONFORMANCE_WORKERS", "2")
    command = [str(python), "-m", "pytest", "tests/integration_tests", "-q"]
    command += ["-p", "no:cacheprovider", "-o", "addopts=", "-o", "log_cli=false"]
    command += ["-n", workers, "--timeout", str(PER_TEST_TIMEOUT), "--tb=line"]
    command += ["--junitxml", str(junit), *extra]
    timeout = float(os.environ.get("CONFORMANCE_TIMEOUT", "1500"))
    try:
        return subprocess.run(command, cwd=work, env=env, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        log(f"the suite did not finish in {timeout:g}s")
        return -1


def read_junit(path: Path) -> Outcome:
    outcome = Outcome()
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{(case.get('classname') or '').split('.')[-1]}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            outcome.failed[name] = (problem.get("message") or "").replace("\n", " ")[:200]
        elif (skip := case.find("skipped")) is not None:
            outcome.skipped[name] = (skip.get("message") or "").replace("\n", " ")[:200]
        else:
            outcome.passed.add(name)
    return outcome


def read_expected(path: Path) -> list[Expected]:
    """``test_file::test_name[params] | reason`` lines; the id may be an fnmatch pattern."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, sep, reason = line.partition("|")
        if not sep or not reason.strip():
            raise SystemExit(f"{path}:{number}: an entry is 'test id | reason'")
        entries.append(Expected(pattern.strip(), reason.strip()))
    return entries


def compare(outcome: Outcome, expected: list[Expected]) -> tuple[list[str], list[str]]:
    """Unexpected failures or skips, and notes on expected ones that now pass.

    A skip counts as a failure: the suite skips a test when something it needs is missing (a
    package, a server feature), and a silent skip would hide that; the expected ones are listed
    with their reason like the expected failures."""
    not_passed = {**outcome.failed, **{n: f"skipped: {m}" for n, m in outcome.skipped.items()}}
    unexpected = [
        f"{name} | {message}"
        for name, message in sorted(not_passed.items())
        if not any(fnmatch.fnmatchcase(name, entry.pattern) for entry in expected)
    ]
    notes = []
    for entry in expected:
        if any(fnmatch.fnmatchcase(name, entry.pattern) for name in not_passed):
            continue
        passing = sorted(n for n in outcome.passed if fnmatch.fnmatchcase(n, entry.pattern))
        if passing:
            notes.append(f"{entry.pattern} now passes ({', '.join(passing[:4])}): take it off")
        else:
            notes.append(f"{entry.pattern} matched no test that ran")
    return unexpected, notes


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # finally blocks stop pytest and the server


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    venv = Path(os.environ.get("CONFORMANCE_VENV", ROOT / ".venv-conformance"))
    python = ensure_venv(venv.resolve())
    expected = read_expected(EXPECTED)
    with tempfile.TemporaryDirectory(prefix="modelgate-conformance-") as temporary:
        work = Path(temporary)
        port, password = free_port(), secrets.token_urlsafe(18)
        server_log = work / "server.log"
        server = start_server(work / "data", port, password, server_log)
        log(f"embedded server on 127.0.0.1:{port} (data in {work / 'data'})")
        suite_started = time.monotonic()
        try:
            rc = run_suite(python, port, password, work, work / "junit.xml", argv)
        finally:
            stop_server(server)
        suite_seconds = time.monotonic() - suite_started
        if rc not in (0, 1) or not (work / "junit.xml").exists():
            print(server_log.read_text(errors="replace")[-3000:])
            log(f"FAILED: the suite did not run to the end (pytest exit status {rc})")
            return 1
        outcome = read_junit(work / "junit.xml")
        tracebacks = server_log.read_text(errors="replace").count("Traceback")
    unexpected, notes = compare(outcome, expected)
    log(
        f"{len(outcome.passed)} passed, {len(outcome.failed)} failed, {len(outcome.skipped)} "
        f"skipped of {outcome.total}; suite {suite_seconds:.0f}s, "
        f"total {time.monotonic() - started:.0f}s"
    )
    for note in notes:
        log(f"note: {note}")
    if tracebacks:
        log(f"note: the server logged {tracebacks} traceback(s)")
    if outcome.total == 0:
        log("FAILED: no test ran")
        return 1
    if unexpected:
        log(f"FAILED: {len(unexpected)} unexpected failure(s) or skip(s):")
        for line in unexpected:
            print(f"  {line}")
        return 1
    log(f"OK: every failure and skip is in {EXPECTED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
