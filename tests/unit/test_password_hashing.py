"""Password hashing runs in its own bounded pool, never on the event loop, and refuses callers
beyond its queue at once instead of queueing without bound."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from management_api.errors import ServiceUnavailable
from management_api.security import PasswordHashing


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll ``condition`` (state changed by threads, which cannot set an asyncio.Event)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_hashes_run_in_worker_threads_and_verify() -> None:
    hashing = PasswordHashing(workers=2)
    try:
        digest = await hashing.hash("correct horse")
        assert await hashing.verify(digest, "correct horse")
        assert not await hashing.verify(digest, "wrong horse")
        assert not await hashing.verify("not-a-hash", "correct horse")
        thread = await hashing._run(lambda: threading.current_thread().name)
        assert thread.startswith("password-hash") and thread != threading.current_thread().name
    finally:
        hashing.close()


async def test_callers_beyond_the_workers_and_the_queue_get_503_at_once() -> None:
    hashing = PasswordHashing(workers=1, max_waiting=1)
    release = threading.Event()
    try:
        running = asyncio.create_task(hashing._run(release.wait))
        waiting = asyncio.create_task(hashing._run(release.wait))
        await until(lambda: hashing.waiting == 1)
        with pytest.raises(ServiceUnavailable) as refused:
            await hashing._run(release.wait)
        assert refused.value.headers["Retry-After"] == "1"
        release.set()
        assert await running and await waiting
    finally:
        release.set()
        hashing.close()


async def test_a_cancelled_caller_keeps_its_slot_until_the_thread_is_done() -> None:
    """Cancelling requests must not let more hashes run at once than there are workers."""
    hashing = PasswordHashing(workers=1, max_waiting=0)
    release = threading.Event()
    try:
        first = asyncio.create_task(hashing._run(release.wait))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        with pytest.raises(ServiceUnavailable):  # the thread still runs: no free slot
            await hashing._run(release.wait)
        release.set()
        await until(lambda: not hashing._slots.locked())  # freed once the thread is done
        assert await hashing._run(lambda: True)
    finally:
        release.set()
        hashing.close()
