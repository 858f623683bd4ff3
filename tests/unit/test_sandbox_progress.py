"""infra.sandbox streams a child's progress reports to the parent while the child runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra.sandbox import run_limited


def child_counts(n: int, report: Callable[[Any], None]) -> int:
    for i in range(n):
        report({"step": i})
    return n


async def test_progress_reports_arrive_in_order_before_the_result() -> None:
    seen: list[Any] = []
    result = await run_limited(
        child_counts, 3, memory_bytes=None, cpu_seconds=None, timeout_s=60, progress=seen.append
    )
    assert result == 3
    assert seen == [{"step": 0}, {"step": 1}, {"step": 2}]
