"""A damaged or foreign file in the event spool directory never stops ingress from starting, never
makes its start loop over sequences nobody wrote, and never marks unwritten events confirmed.

Found by attacking a running stack (issue 9): ``events-0000000001.old.spool`` (an operator's copy)
made the start raise ``ValueError``; a ``B`` line with ``"n": 300000000`` took 104 s of CPU before
the first request; ``C99999999999999`` marked every later event confirmed, so a crash lost them.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from ingress.events import EventSpool

HEADER = b'H{"first_seq":0,"confirmed":0}\n'
EVENT = b'E0 {"event_id":"e0"}\n'


def open_spool(directory: Path) -> tuple[EventSpool, int]:
    spool = EventSpool(directory)
    replay = spool.open(flush_max=500)
    return spool, replay.events


@pytest.mark.parametrize(
    "name", ["events-0000000001.old.spool", "events-x.spool", "events-.spool", "events-1e3.spool"]
)
def test_a_file_that_only_looks_like_a_segment_is_left_alone(tmp_path: Path, name: str) -> None:
    (tmp_path / "events-0000000000.spool").write_bytes(HEADER + EVENT)
    (tmp_path / name).write_bytes(HEADER + b'E1 {"event_id":"foreign"}\n')
    spool, events = open_spool(tmp_path)
    try:
        assert events == 1  # the real segment's event, not the copy's
        assert (tmp_path / name).exists()
    finally:
        spool.close()


def test_a_directory_named_like_a_segment_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "events-0000000003.spool").mkdir()
    spool, events = open_spool(tmp_path)
    try:
        assert events == 0
        spool.append(b'{"event_id":"new"}')
    finally:
        spool.close()


def test_a_batch_line_over_events_never_written_is_skipped_not_walked(tmp_path: Path) -> None:
    batch = b"B" + orjson.dumps({"id": "x", "first": 0, "n": 300_000_000}) + b"\n"
    (tmp_path / "events-0000000000.spool").write_bytes(HEADER + EVENT + batch)
    spool, events = open_spool(tmp_path)
    try:
        assert events == 1  # the event goes again, in a batch of its own
        assert spool.next_seq == 1
    finally:
        spool.close()


@pytest.mark.parametrize(
    "damage",
    [
        b"C99999999999999\n",
        b"C-5\n",
        b'H{"first_seq":0,"confirmed":99999999999999}\n',
        b'H{"first_seq":1e30,"confirmed":0}\n',
    ],
)
def test_a_confirmation_of_unwritten_events_does_not_hide_later_ones(
    tmp_path: Path, damage: bytes
) -> None:
    """After damage, the events still unconfirmed are replayed, and an event recorded in the new
    run is replayed too if that run is killed before the broker confirmed it."""
    (tmp_path / "events-0000000000.spool").write_bytes(HEADER + EVENT + damage)
    spool, events = open_spool(tmp_path)
    assert events == 1
    assert spool.confirmed <= spool.next_seq
    spool.append(b'{"event_id":"after"}')
    # killed: no close, no confirmation; the next process reads both events.
    for fd in (spool._fd, spool._lock_fd):
        assert fd is not None
        os.close(fd)
    spool._fd = spool._lock_fd = None
    again, events_again = open_spool(tmp_path)
    try:
        assert events_again == 2
    finally:
        again.close()
