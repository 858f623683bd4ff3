"""The ingress event spool: what the broker never confirmed outlives the process, once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingress.events import EventPublisher, EventSpool
from schemas.messages import RequestEvent, utc_from_epoch


def event(n: int) -> RequestEvent:
    return RequestEvent(
        event_id=f"e{n}", ts=utc_from_epoch(time.time()), api_id="a", status_code=200
    )


class Broker:
    """Confirms publishes until told to fail; keeps what it confirmed."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.fail = False

    async def publish(self, batch_id: str, body: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        message = orjson.loads(body)
        assert message["batch_id"] == batch_id
        self.batches.append(message)

    def event_ids(self) -> list[str]:
        return [e["event_id"] for b in self.batches for e in b["events"]]


def publisher(directory: Path, broker: Broker, **kw: Any) -> EventPublisher:
    events = EventPublisher("ingress-t", flush_max=4, spool=EventSpool(directory, **kw))
    events.attach(broker.publish)
    events.open_spool()
    return events


async def test_a_killed_publisher_replays_every_unconfirmed_event_and_nothing_confirmed(
    tmp_path: Path,
) -> None:
    """Confirmed batches are not sent again; a batch formed but unconfirmed goes again under its
    own id marked replayed (the consumer checks it); events never batched go in new batches."""
    broker = Broker()
    first = publisher(tmp_path, broker)
    for n in range(6):
        first.record(event(n))
    assert await first.flush()  # e0..e5 confirmed
    for n in range(6, 10):
        first.record(event(n))
    broker.fail = True
    assert not await first.flush()  # e6..e9 formed into a batch, not confirmed
    unconfirmed_batch = first._pending[0] if first._pending else None
    for n in range(10, 13):
        first.record(event(n))  # never batched
    # Killed: no drain, no close (the lock goes with the process; here, by hand).
    assert first.spool is not None and first.spool._lock_fd is not None
    import os

    os.close(first.spool._lock_fd)

    broker.fail = False
    before = len(broker.batches)
    second = publisher(tmp_path, broker)
    assert second.depth == 7
    assert await second.flush()
    replayed = broker.batches[before:]
    assert [e["event_id"] for b in replayed for e in b["events"]] == [f"e{n}" for n in range(6, 13)]
    assert replayed[0]["batch_id"] == unconfirmed_batch and replayed[0]["replayed"] is True
    assert all(not b.get("replayed") for b in replayed[1:])
    assert broker.event_ids() == [f"e{n}" for n in range(13)]

    # Everything confirmed now: a third start has nothing to send.
    os.close(second.spool._lock_fd)  # type: ignore[union-attr]
    third = publisher(tmp_path, broker)
    assert third.depth == 0


async def test_a_clean_stop_with_everything_confirmed_leaves_no_spool_file(tmp_path: Path) -> None:
    broker = Broker()
    events = publisher(tmp_path, broker)
    for n in range(9):
        events.record(event(n))
    await events.drain(timeout_s=2)
    events.close_spool()
    assert list(tmp_path.glob("events-*.spool")) == []
    assert broker.event_ids() == [f"e{n}" for n in range(9)]


async def test_confirmed_segments_are_deleted_and_the_spool_stays_small(tmp_path: Path) -> None:
    broker = Broker()
    events = publisher(tmp_path, broker, segment_bytes=2_000)
    for round_ in range(30):
        for n in range(10):
            events.record(event(round_ * 10 + n))
        assert await events.flush()
    assert len(list(tmp_path.glob("events-*.spool"))) <= 2
    assert len(broker.event_ids()) == 300


def test_a_second_process_cannot_share_a_spool_directory(tmp_path: Path) -> None:
    EventSpool(tmp_path).open(10)
    with pytest.raises(RuntimeError, match="another ingress"):
        EventSpool(tmp_path).open(10)


async def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    broker = Broker()
    broker.fail = True
    events = publisher(tmp_path, broker)
    events.record(event(1))
    events.record(event(2))
    spool = events.spool
    assert spool is not None and spool._fd is not None
    import os

    os.write(spool._fd, b'E2 {"event_id": "e-torn"')
    os.close(spool._lock_fd)  # type: ignore[arg-type]
    broker.fail = False
    again = publisher(tmp_path, broker)
    assert await again.flush()
    assert broker.event_ids() == ["e1", "e2"]
