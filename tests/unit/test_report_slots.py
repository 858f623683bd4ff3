"""Per-user slots for the heavy monitoring reports (drift, live performance): at most
``HEAVY_REPORTS_PER_USER`` run at once, a few more wait their turn, the rest get 429."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any, cast

import pytest

from management_api import monitoring as monitoring_module
from management_api.accounts import Principal
from management_api.errors import TooManyRequests
from management_api.monitoring import (
    HEAVY_REPORT_WAITING,
    HEAVY_REPORTS_PER_USER,
    Monitoring,
)
from schemas.resources import Role


def principal(user_id: str) -> Principal:
    return Principal(user_id=user_id, username=user_id, role=Role.USER)


def monitoring() -> Monitoring:
    return Monitoring(cast(Any, None), cast(Any, None), timeout_s=5.0)


async def test_a_waiting_report_runs_when_a_slot_frees_and_nothing_is_left_behind() -> None:
    m, alice = monitoring(), principal("alice")
    async with AsyncExitStack() as held:
        for _ in range(HEAVY_REPORTS_PER_USER):
            await held.enter_async_context(m.heavy_report(alice))
        ran = asyncio.Event()

        async def third() -> None:
            async with m.heavy_report(alice):
                ran.set()

        waiting = asyncio.create_task(third())
        await asyncio.sleep(0.05)
        assert not ran.is_set()  # both slots taken: it waits
        async with m.heavy_report(principal("bob")):  # another user is not held up
            pass
    await asyncio.wait_for(waiting, 2.0)
    assert ran.is_set()
    assert m._heavy == {}


async def test_past_the_waiting_room_or_the_wait_a_report_is_a_429(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(monitoring_module, "HEAVY_REPORT_WAIT_S", 0.3)
    m, alice = monitoring(), principal("alice")
    async with AsyncExitStack() as held:
        for _ in range(HEAVY_REPORTS_PER_USER):
            await held.enter_async_context(m.heavy_report(alice))

        async def wait_one() -> None:
            async with m.heavy_report(alice):
                pass

        waiters = [asyncio.create_task(wait_one()) for _ in range(HEAVY_REPORT_WAITING)]
        await asyncio.sleep(0.05)
        with pytest.raises(TooManyRequests) as refused:  # the waiting room is full: at once
            async with m.heavy_report(alice):
                pass
        assert refused.value.headers == {"Retry-After": "1"}
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, TooManyRequests) for r in results), results  # waited 0.3 s
    async with m.heavy_report(alice):  # all free again
        pass
    assert m._heavy == {}


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    m, alice = monitoring(), principal("alice")
    async with AsyncExitStack() as held:
        for _ in range(HEAVY_REPORTS_PER_USER):
            await held.enter_async_context(m.heavy_report(alice))

        async def wait_one() -> None:
            async with m.heavy_report(alice):
                pass

        waiter = asyncio.create_task(wait_one())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert m._heavy["alice"].waiting == 0
    assert m._heavy == {}
