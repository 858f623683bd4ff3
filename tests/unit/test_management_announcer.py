"""Control events survive a broker that is briefly away, and keep their order."""

from __future__ import annotations

import asyncio

from management_api.announcer import ChangeAnnouncer
from schemas import ApiChanged, ApiChangeKind


def change(api_id: str, kind: ApiChangeKind = ApiChangeKind.STATUS) -> ApiChanged:
    return ApiChanged(kind=kind, api_id=api_id)


async def test_changes_unpublished_during_an_outage_are_published_in_order_after_it() -> None:
    published: list[str] = []
    broker_up = False

    async def publish(event: ApiChanged) -> None:
        if not broker_up:
            raise ConnectionError("broker away")
        published.append(event.api_id)

    announcer = ChangeAnnouncer(publish, retry_initial_s=0.01, retry_max_s=0.02)
    await announcer.announce(change("a"))  # fails: kept
    await announcer.announce(change("b"))  # queued behind "a", not published out of order
    assert published == [] and announcer.pending == 2
    broker_up = True
    await announcer.announce(change("c"))
    for _ in range(200):
        if announcer.pending == 0:
            break
        await asyncio.sleep(0.01)
    assert published == ["a", "b", "c"]
    await announcer.announce(change("d"))  # broker up, nothing pending: published at once
    assert published[-1] == "d"
    await announcer.close()


async def test_the_pending_queue_is_bounded() -> None:
    async def publish(event: ApiChanged) -> None:
        raise ConnectionError("broker away")

    announcer = ChangeAnnouncer(publish, max_pending=3, retry_initial_s=10)
    for name in "abcde":
        await announcer.announce(change(name))
    assert announcer.pending == 3
    await announcer.close()
