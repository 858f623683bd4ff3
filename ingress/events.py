"""Request events leave in confirmed batches; while the broker is away they wait, bounded.

A batch keeps its id across retries (``message_id``), so a publish that landed but was not
confirmed and is sent again is recognised as a duplicate downstream.

With a spool (``EventSpool``), every event is also appended to a local file before its request
is answered, and each batch and each broker confirmation is noted there: an ingress killed
outright replays, at its next start, the events the broker never confirmed (batches already
formed go again under their own ids, marked ``replayed`` so the consumer checks their event ids).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from schemas.messages import RequestEvent, RequestEventBatch, encode

log = logging.getLogger(__name__)

PublishEvents = Callable[[str, bytes], Awaitable[None]]
"""Publishes one encoded ``RequestEventBatch`` with its batch id; raises when not confirmed."""

SEGMENT_GLOB = "events-*.spool"
SEGMENT_NAME = re.compile(r"events-(\d{1,18})\.spool")
"""A segment's exact name: anything else the glob matches (a copy, a directory) is left alone."""
MAX_SEQ = 1 << 62
"""Sequences, batch bounds and confirmations beyond this (or negative) are unreadable lines."""


def _segment_index(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def _seq(value: object) -> int:
    """A sequence number read from the spool: an int in [0, MAX_SEQ] (``ValueError`` else)."""
    if type(value) is not int or not 0 <= value <= MAX_SEQ:
        raise ValueError(f"not a spool sequence: {value!r}")
    return value


@dataclass
class Replay:
    """What a spool held that the broker never confirmed, in the order it must be sent."""

    batches: list[tuple[str, list[bytes], int, bool]] = field(default_factory=list)
    """(batch id, events, end sequence, replayed): batches formed before (their own ids,
    ``replayed``) and events never batched (new ids), oldest first."""
    events: int = 0


class EventSpool:
    """Append-only segment files (one directory per ingress process) holding every recorded event
    until the broker confirmed it.

    Lines: ``E<seq> <event JSON>`` per event, ``B<json>`` when a batch is formed (id, first
    sequence, count; written before it is published), ``C<seq>`` when the broker confirmed every
    event below ``seq`` (batches are confirmed in order), and a header ``H<json>`` per segment.
    Writes go to the OS at once (``os.write``, no fsync): a killed process loses nothing it wrote;
    a machine crash loses what the kernel had not yet written back (up to ~30 s by default).
    A segment is deleted once every event up to its end is confirmed; a new one starts when the
    current one passes ``segment_bytes``.
    """

    def __init__(self, directory: Path, segment_bytes: int = 8 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.next_seq = 0
        self.confirmed = 0
        self.failures = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._index = 0
        self._size = 0
        self._closed_segments: deque[tuple[Path, int]] = deque()

    # -- start -----------------------------------------------------------------------------

    def open(self, flush_max: int) -> Replay:
        """Lock the directory, read what earlier processes left and start a new segment."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise RuntimeError(
                f"event spool {self.directory} is used by another ingress process; give each "
                "ingress its own MODELGATE_INGRESS_EVENTS_SPOOL_DIR"
            ) from None
        self._lock_fd = lock_fd
        segments = sorted(
            (
                path
                for path in self.directory.glob(SEGMENT_GLOB)
                if SEGMENT_NAME.fullmatch(path.name) and path.is_file()
            ),
            key=_segment_index,
        )
        events: dict[int, bytes] = {}
        batches: list[tuple[str, int, int]] = []
        starts: list[int] = []
        bad = 0
        for path in segments:
            first, bad_lines = self._read(path, events, batches)
            starts.append(first)
            bad += bad_lines
        if bad:
            log.warning("event spool: %d unreadable lines skipped (a torn write)", bad)
        seqs = events.keys()
        self.next_seq = max(max(seqs, default=-1) + 1, max(starts, default=0))
        # Segments read are closed: each ends where the next one starts.
        ends = [*starts[1:], self.next_seq][: len(segments)]
        self._closed_segments.extend(zip(segments, ends, strict=True))
        self._index = _segment_index(segments[-1]) + 1 if segments else 0
        replay = self._replay(events, batches, flush_max)
        self._start_segment()
        for batch_id, batch_events, end, replayed in replay.batches:
            if not replayed:  # formed now: noted before it is ever published
                self.note_batch(batch_id, end - len(batch_events), len(batch_events))
        self._drop_confirmed_segments()
        if replay.events:
            log.warning(
                "event spool: %d events of an earlier run were not confirmed; sending them again",
                replay.events,
            )
        return replay

    def _read(
        self,
        path: Path,
        events: dict[int, bytes],
        batches: list[tuple[str, int, int]],
    ) -> tuple[int, int]:
        first = 0
        bad = 0
        # What this segment can speak of: a batch or a confirmation never reaches past the events
        # written before it (a line that does is damage, not a reason to skip or loop over them).
        high = 0
        with path.open("rb") as file:
            for line in file:
                if not line.endswith(b"\n"):
                    bad += 1  # the tail of a write the machine did not finish
                    continue
                tag = line[:1]
                try:
                    if tag == b"E":
                        seq_text, _, payload = line[1:].partition(b" ")
                        payload = payload[:-1]
                        seq = _seq(int(seq_text))
                        if type(orjson.loads(payload)) is dict:  # whole, not torn
                            events[seq] = payload
                            high = max(high, seq + 1)
                    elif tag == b"B":
                        batch = orjson.loads(line[1:])
                        start, count = _seq(batch["first"]), _seq(batch["n"])
                        if start + count > high:
                            raise ValueError("a batch of events not written")
                        batches.append((str(batch["id"]), start, count))
                    elif tag == b"C":
                        confirmed = _seq(int(line[1:]))
                        if confirmed > high:
                            raise ValueError("a confirmation of events not written")
                        self.confirmed = max(self.confirmed, confirmed)
                    elif tag == b"H":
                        header = orjson.loads(line[1:])
                        first = _seq(header["first_seq"])
                        confirmed = _seq(header["confirmed"])
                        if confirmed > first:
                            raise ValueError("a header confirming events not written")
                        high = max(high, first)
                        self.confirmed = max(self.confirmed, confirmed)
                    else:
                        bad += 1
                except (ValueError, KeyError, TypeError):
                    bad += 1
        return first, bad

    def _replay(
        self,
        events: dict[int, bytes],
        batches: list[tuple[str, int, int]],
        flush_max: int,
    ) -> Replay:
        replay = Replay()
        items: list[tuple[int, str, list[bytes], int, bool]] = []
        batched: set[int] = set()
        for batch_id, first, count in batches:
            if first + count <= self.confirmed:
                continue
            seqs = range(first, first + count)
            batched.update(seqs)
            found = [events[s] for s in seqs if s in events]
            if found:
                items.append((first, batch_id, found, first + count, True))
        # Events never put in a batch were never published: new batches, new ids.
        loose = sorted(s for s in events if s >= self.confirmed and s not in batched)
        chunk: list[int] = []
        for seq in loose:
            if chunk and (seq != chunk[-1] + 1 or len(chunk) >= flush_max):
                items.append(self._loose_item(chunk, events))
                chunk = []
            chunk.append(seq)
        if chunk:
            items.append(self._loose_item(chunk, events))
        items.sort(key=lambda item: item[0])
        for _, batch_id, found, end, replayed in items:
            replay.batches.append((batch_id, found, end, replayed))
            replay.events += len(found)
        return replay

    @staticmethod
    def _loose_item(
        seqs: list[int], events: dict[int, bytes]
    ) -> tuple[int, str, list[bytes], int, bool]:
        return seqs[0], uuid.uuid4().hex, [events[s] for s in seqs], seqs[-1] + 1, False

    # -- writing ---------------------------------------------------------------------------

    def _start_segment(self) -> None:
        path = self.directory / f"events-{self._index:010d}.spool"
        self._index += 1
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
        self._path = path
        self._size = 0
        header = {"first_seq": self.next_seq, "confirmed": self.confirmed}
        self._write(b"H" + orjson.dumps(header) + b"\n")

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            return
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            self.failures += 1
            if self.failures % 1000 == 1:
                log.error("event spool write failed (%s); %d failures so far", exc, self.failures)
            return
        self._size += written

    def append(self, event: bytes) -> None:
        """Write one encoded event (before its request is answered); it takes the next
        sequence."""
        seq = self.next_seq
        self.next_seq = seq + 1
        self._write(b"E%d %b\n" % (seq, event))

    def note_batch(self, batch_id: str, first: int, count: int) -> None:
        self._write(b"B" + orjson.dumps({"id": batch_id, "first": first, "n": count}) + b"\n")

    def note_confirmed(self, end: int) -> None:
        """Every event below ``end`` is confirmed (or was dropped): its segments may go."""
        if end <= self.confirmed:
            return
        self.confirmed = end
        self._write(b"C%d\n" % end)
        if self._size >= self.segment_bytes and self._fd is not None:
            os.close(self._fd)
            self._closed_segments.append((self._path, self.next_seq))
            self._start_segment()
        self._drop_confirmed_segments()

    def _drop_confirmed_segments(self) -> None:
        while self._closed_segments and self._closed_segments[0][1] <= self.confirmed:
            path, _ = self._closed_segments.popleft()
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop writing; when everything was confirmed the files go, else they wait for the next
        start."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self.confirmed >= self.next_seq:
                for path, _ in self._closed_segments:
                    path.unlink(missing_ok=True)
                self._closed_segments.clear()
                self._path.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def encode_event(event: RequestEvent) -> bytes:
    """One ``RequestEvent`` as JSON, once (the spool and the batch reuse the bytes)."""
    return encode(event)


def batch_body(
    batch_id: str, ingress_id: str, events: Iterable[bytes], replayed: bool = False
) -> bytes:
    """One encoded ``RequestEventBatch`` around already encoded events: the batch itself is
    encoded with no events (``events`` is its last field) and the events spliced in."""
    head = encode(
        RequestEventBatch(batch_id=batch_id, ingress_id=ingress_id, replayed=replayed, events=[])
    )
    return b"%b%b]}" % (head[: -len(b"]}")], b",".join(events))


class EventPublisher:
    """Buffers request events and flushes them every ``flush_s`` or ``flush_max`` events."""

    def __init__(
        self,
        ingress_id: str,
        flush_s: float = 0.05,
        flush_max: int = 500,
        buffer_max: int = 200_000,
        max_backoff_s: float = 2.0,
        spool: EventSpool | None = None,
    ) -> None:
        self.ingress_id = ingress_id
        self.flush_s = flush_s
        self.flush_max = flush_max
        self.buffer_max = buffer_max
        self.max_backoff_s = max_backoff_s
        self.spool = spool
        self._buffer: deque[bytes] = deque()  # encoded events
        # (batch id, body, event count, end sequence in the spool)
        self._pending: tuple[str, bytes, int, int] | None = None
        self._replay: deque[tuple[str, bytes, int, int]] = deque()
        self._wake = asyncio.Event()
        self._publish: PublishEvents | None = None
        self.published = 0
        self.dropped = 0
        self.failures = 0
        self.replayed = 0

    def attach(self, publish: PublishEvents) -> None:
        self._publish = publish

    def open_spool(self) -> int:
        """Open the spool (when there is one) and queue what an earlier run left unconfirmed
        ahead of new events; returns how many events that is."""
        if self.spool is None:
            return 0
        replay = self.spool.open(self.flush_max)
        for batch_id, events, end, replayed in replay.batches:
            body = batch_body(batch_id, self.ingress_id, events, replayed)
            self._replay.append((batch_id, body, len(events), end))
        self.replayed = replay.events
        if replay.events:
            self._wake.set()
        return replay.events

    def close_spool(self) -> None:
        if self.spool is not None:
            self.spool.close()

    @property
    def depth(self) -> int:
        """Events not yet confirmed by the broker."""
        return (
            len(self._buffer)
            + (self._pending[2] if self._pending else 0)
            + sum(item[2] for item in self._replay)
        )

    def record(self, event: RequestEvent) -> None:
        """Queue one event; never blocks the request. With a spool,
        the event is written there first, so it outlives a crash once this returns."""
        encoded = encode_event(event)
        if self.spool is not None:
            self.spool.append(encoded)
        if len(self._buffer) >= self.buffer_max:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("event buffer full; %d events dropped so far", self.dropped)
        self._buffer.append(encoded)
        if len(self._buffer) >= self.flush_max:
            self._wake.set()

    def _next_batch(self) -> tuple[str, bytes, int, int]:
        if self._replay:
            return self._replay.popleft()
        count = min(len(self._buffer), self.flush_max)
        # The buffer holds the newest events in spool order (drops take the oldest).
        first = (self.spool.next_seq if self.spool is not None else 0) - len(self._buffer)
        events = [self._buffer.popleft() for _ in range(count)]
        batch_id = uuid.uuid4().hex
        if self.spool is not None:
            self.spool.note_batch(batch_id, first, count)
        return batch_id, batch_body(batch_id, self.ingress_id, events), count, first + count

    async def flush(self) -> bool:
        """Publish everything buffered now; False when the broker refused (events kept)."""
        if self._publish is None:
            return False
        while self._pending is not None or self._buffer or self._replay:
            if self._pending is None:
                self._pending = self._next_batch()
            batch_id, body, count, end = self._pending
            try:
                await self._publish(batch_id, body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if self.failures % 20 == 1:
                    log.warning("event batch not confirmed (%s); %d events wait", exc, self.depth)
                return False
            self._pending = None
            self.published += count
            if self.spool is not None:
                self.spool.note_confirmed(end)
        return True

    async def run(self) -> None:
        """Flush forever: on schedule, when a batch is full, with backoff while failing."""
        backoff = self.flush_s
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            if await self.flush():
                backoff = self.flush_s
            else:
                backoff = min(self.max_backoff_s, max(0.1, backoff * 2))

    async def drain(self, timeout_s: float) -> None:
        """Flush what is left before shutdown, trying for at most ``timeout_s``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.depth and loop.time() < end:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self.depth:
            where = "kept in the spool for the next start" if self.spool else "unpublished"
            log.error("stopping with %d request events %s", self.depth, where)
