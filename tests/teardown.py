"""Bounded teardown steps: a fixture's clean-up that hangs must not hold the whole run.

A step that takes longer than its bound is cancelled; what every task of the loop was awaiting is
written to ``test-artifacts/teardown-hangs.txt`` and given as a warning, and the teardown goes on
(the session's end deletes what is left of the test's broker namespace anyway).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TEARDOWN_BOUND_S = 30.0


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is, innermost last: each coroutine's file, line and function."""
    frames: list[str] = []
    awaited: Any = task.get_coro()
    for _ in range(40):
        if awaited is None:
            break
        frame = (
            getattr(awaited, "cr_frame", None)
            or getattr(awaited, "ag_frame", None)
            or getattr(awaited, "gi_frame", None)
        )
        if frame is not None:
            frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = (
            getattr(awaited, "cr_await", None)
            or getattr(awaited, "ag_await", None)
            or getattr(awaited, "gi_yieldfrom", None)
        )
    return frames


def dump_tasks() -> str:
    lines: list[str] = []
    for task in asyncio.all_tasks():
        lines.append(f"task {task.get_name()}:")
        lines.extend(f"    {frame}" for frame in await_chain(task))
    return "\n".join(lines)


async def bounded(step: Awaitable[Any], what: str, seconds: float = TEARDOWN_BOUND_S) -> None:
    """Await one clean-up step for at most ``seconds``; past that, report where it hung."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        task.result()
        return
    report = f"teardown step {what!r} still running after {seconds:.0f}s\n{dump_tasks()}\n"
    task.cancel()
    await asyncio.wait({task}, timeout=5.0)
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "teardown-hangs.txt").open("a") as out:
        out.write(report + "\n")
    warnings.warn(report, stacklevel=2)
