"""infra.sandbox: a function runs in a child process under memory, CPU and wall-time limits."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from infra.sandbox import (
    SandboxFailed,
    SandboxMemoryError,
    SandboxTimeout,
    run_limited,
)

LIMITS: dict[str, Any] = {"memory_bytes": 256 * 1024 * 1024, "cpu_seconds": 20, "timeout_s": 60}


# Child-side functions: module level, so the spawned child can import them.


def child_sum(values: list[int]) -> dict[str, Any]:
    return {"sum": sum(values), "pid": os.getpid()}


def child_raise(message: str) -> None:
    raise ValueError(message)


def child_allocate(n_bytes: int) -> int:
    return len(bytearray(n_bytes))


def child_spin() -> None:
    while True:
        pass


def child_sleep_after_pid(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def child_segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def child_huge_result() -> str:
    return "x" * (2 * 1024 * 1024)


def child_object() -> object:
    return object()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


async def wait_for_pid_file(path: Path) -> int:
    for _ in range(600):
        if path.is_file() and path.read_text():
            return int(path.read_text())
        await asyncio.sleep(0.1)
    raise AssertionError("the child never started")


async def wait_dead(pid: int) -> bool:
    for _ in range(100):
        if not pid_alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_returns_the_functions_json_result_from_another_process() -> None:
    """The function runs in a child (another pid) and its result comes back decoded."""
    result = await run_limited(child_sum, [1, 2, 3], **LIMITS)
    assert result["sum"] == 6
    assert result["pid"] != os.getpid()


async def test_an_exception_in_the_function_is_a_sandbox_failed_naming_its_type() -> None:
    with pytest.raises(SandboxFailed) as info:
        await run_limited(child_raise, "bad input", **LIMITS)
    assert info.value.message == "bad input"
    assert info.value.error_type == "builtins.ValueError"


async def test_allocating_past_the_memory_limit_is_a_sandbox_memory_error() -> None:
    """1 GiB asked under a 256 MiB address-space limit fails in the child, not the parent."""
    with pytest.raises(SandboxMemoryError):
        await run_limited(child_allocate, 1024 * 1024 * 1024, **LIMITS)
    assert await run_limited(child_allocate, 1024 * 1024, **LIMITS) == 1024 * 1024


async def test_a_function_spinning_past_its_cpu_limit_is_killed_as_a_timeout() -> None:
    with pytest.raises(SandboxTimeout):
        await run_limited(child_spin, memory_bytes=None, cpu_seconds=1, timeout_s=120)


async def test_the_wall_timeout_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(SandboxTimeout):
        await run_limited(
            child_sleep_after_pid, str(pid_file), memory_bytes=None, cpu_seconds=None, timeout_s=3
        )
    pid = int(pid_file.read_text())
    assert await wait_dead(pid), "the child outlived its timeout"


async def test_cancelling_the_awaiting_task_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task = asyncio.create_task(
        run_limited(
            child_sleep_after_pid, str(pid_file), memory_bytes=None, cpu_seconds=None, timeout_s=300
        )
    )
    pid = await wait_for_pid_file(pid_file)
    assert pid_alive(pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_dead(pid), "the child outlived the cancelled task"


async def test_the_event_loop_keeps_running_while_a_child_works(tmp_path: Path) -> None:
    """While the child sleeps, the parent's loop still runs other coroutines."""
    pid_file = tmp_path / "pid"
    task = asyncio.create_task(
        run_limited(
            child_sleep_after_pid, str(pid_file), memory_bytes=None, cpu_seconds=None, timeout_s=300
        )
    )
    ticks = 0
    while not pid_file.is_file():
        await asyncio.sleep(0.01)
        ticks += 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ticks > 0


async def test_a_crashing_child_is_a_sandbox_failed_naming_the_signal() -> None:
    with pytest.raises(SandboxFailed) as info:
        await run_limited(child_segfault, **LIMITS)
    assert "SIGSEGV" in info.value.message


async def test_a_result_larger_than_the_cap_is_refused() -> None:
    with pytest.raises(SandboxFailed):
        await run_limited(child_huge_result, **LIMITS, max_result_bytes=1024 * 1024)


async def test_a_result_that_is_not_json_is_refused_not_unpickled() -> None:
    with pytest.raises(SandboxFailed) as info:
        await run_limited(child_object, **LIMITS)
    assert "JSON" in info.value.message
