"""``VerifySlots``: how many untrusted model files are opened at once (H9, issue 11 review)."""

from __future__ import annotations

import asyncio

import pytest

from management_api.catalog import VerifyLimits, VerifySlots
from management_api.errors import TooManyRequests


async def test_files_are_opened_a_few_at_a_time_one_per_user_and_the_line_is_bounded() -> None:
    slots = VerifySlots(VerifyLimits(concurrent=1, per_user=1, waiting=1))
    release = asyncio.Event()
    entered: list[str] = []

    async def check(user: str) -> None:
        async with slots.take(user):
            entered.append(user)
            await release.wait()

    first = asyncio.create_task(check("alice"))
    await asyncio.sleep(0)
    assert entered == ["alice"]
    with pytest.raises(TooManyRequests) as same_user:  # alice's second file while one is checked
        await check("alice")
    assert same_user.value.details == {"limited_by": "user"}
    assert int(same_user.value.headers["Retry-After"]) >= 1

    second = asyncio.create_task(check("bob"))  # waits for the one slot
    await asyncio.sleep(0)
    assert entered == ["alice"]
    with pytest.raises(TooManyRequests) as full:  # the line (1) is full
        await check("carol")
    assert full.value.details == {"limited_by": "server"}

    release.set()
    await asyncio.gather(first, second)
    assert entered == ["alice", "bob"]
    await check("alice")  # every slot and count given back
    assert entered == ["alice", "bob", "alice"]
