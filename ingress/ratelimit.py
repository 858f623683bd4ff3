"""Token buckets per API key: ``limit`` requests per minute, refilled continuously, exact across
ingress replicas.

One process (or a replica that knows no peer) holds one bucket of the whole limit per key, as
always. With several ingress replicas (``modelgate up --ingress-workers N``, or replicas behind
any load balancer) each replica holds a *share* of every key's limit, and the shares sum to the
limit, so the limit a user sets is the limit clients get whichever replicas their requests land
on. The design (``docs/rate-limits.md`` tells it for users):

- **Membership.** Every replica announces itself with an ``IngressHeartbeat`` every
  ``ingress_peer_heartbeat_s`` (``ingress.peers.PeerLink``); the live set is the replicas heard
  within ``ingress_peer_expire_heartbeats`` intervals (a SIGKILLed replica drops out then), and a
  replica that stops cleanly says goodbye (dropped at once). Each replica keeps the set itself
  (``ShareBook``): no coordinator, no shared store, nothing on the request path but a dict.
- **Shares follow demand.** A heartbeat carries, per key, the replica's recent demand (attempted
  requests a second, smoothed over heartbeats). A key's share of replica *r* is
  ``limit * w_r / sum(w)`` with ``w_r = demand_r + FLOOR * total / n``: a client on one
  keep-alive connection moves (almost) the whole limit to its replica within a heartbeat or two,
  while every other replica keeps a small floor for new connections; with no demand anywhere the
  split is even. A replica's own demand takes effect when its heartbeat comes back from the
  broker, the moment its peers get it, so all replicas split with the same figures and the shares
  sum to the limit.
- **A re-split moves tokens, never creates them.** When a key's share of a replica changes, its
  bucket is never refilled: a shrinking bucket keeps its fill (tokens rescaled proportionally,
  ``tokens * new / old``) and announces the tokens it gave up (``released``) in its next
  heartbeat; a growing bucket keeps its tokens (its capacity and refill rate grow) and receives,
  from each release it hears, its part: a release is split among the replicas whose share grew
  since the releaser's bucket was last sized, by their growth (they have the room), or by share
  when none did. The parts sum to the release, so the tokens of all replicas sum to what they were
  and the replicas together behave as one bucket of the limit (a burst of ``limit``, a refill of
  ``limit``/min). A replica re-splits all its buckets at each of its heartbeats (also those of
  keys nobody sends it any more), and a key's bucket at once when a request finds its share
  changed. A replica that stops cleanly releases all its tokens in its goodbye.
- **Broker unreachable.** Nobody is expired while this replica's broker link is down: it keeps
  its last share (fail safe: the shares still sum to the limit), and no prediction can be
  answered without the broker anyway. Peers give a replica cut off from the broker a full expiry
  period after the link returns.

What is not exact, and in which direction: tokens released towards a bucket that is full (or
that the replica does not hold) are lost, and so are those of a SIGKILLed replica (fewer
requests pass, never more); a replica that joins or restarts starts with full buckets of its
share (at most its share extra, once); shares computed while heartbeats are in flight may
disagree for one broker round trip; at start a replica knows its peers after one round trip (its
hello is answered at once; ``/ready`` waits for it).

The RateLimit headers speak of the replica that answers: ``RateLimit-Limit`` is the API's limit,
``RateLimit-Remaining`` and ``RateLimit-Reset`` this replica's bucket, ``Retry-After`` when this
replica allows a request again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class RateDecision:
    """The outcome of one take, with what the RateLimit headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    """Seconds until the bucket is full again."""
    retry_after_s: int
    """Seconds until one request is allowed again (0 when allowed)."""

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


FLOOR = 0.05
"""Weight every live replica gets on a key with demand, as a fraction of the mean demand: what a
replica nobody has sent that key to yet may still let through (a new connection landing there)."""
SMOOTHING = 0.5
"""Weight of the latest heartbeat interval in a key's announced demand (exponential average)."""
MIN_DEMAND = 1e-3
"""Demand (requests/s) below which a key is no longer announced."""
MAX_REPORTED_KEYS = 10_000
"""Keys one heartbeat carries at most (the most demanded first)."""


@dataclass
class Peer:
    """What this replica last heard from another one."""

    boot: str
    last_seen: float
    demand: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    """What this replica announces in its next heartbeat."""

    demand: dict[str, float]
    limits: dict[str, int]
    released: dict[str, dict[str, float]]
    returned: dict[str, dict[str, float]]


Shares = dict[str, float]
"""A key's limit split over the live replicas (replica id -> requests per minute)."""


class ShareBook:
    """The live replicas, every key's split of its limit between them, and the tokens released
    to this replica by the others (pure, clock passed in).

    ``version`` changes whenever the inputs of the split do (a heartbeat heard, a replica joined,
    left or expired); ``shares`` is cached per key until then.
    """

    def __init__(
        self,
        replica_id: str,
        *,
        expire_after_s: float = 3.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replica_id = replica_id
        self.expire_after_s = expire_after_s
        self._clock = clock
        self.peers: dict[str, Peer] = {}
        self.demand: dict[str, float] = {}
        """This replica's demand per key as last heard back from the broker (what its peers
        have too: every replica splits with the same figures)."""
        self._announced: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._last_report = clock()
        self._frozen = False
        self.version = 0
        self._cache: dict[str, tuple[int, int, Shares]] = {}
        self.released: dict[str, dict[str, float]] = {}
        """Tokens this replica gave up since its last heartbeat (announced in the next)."""
        self.incoming: dict[str, list[tuple[str, float]]] = {}
        """Per key, (releasing replica, tokens) heard and not yet taken into the bucket."""
        self.returned: dict[str, dict[str, float]] = {}
        """Per key and releasing replica, the part of its release this replica had no room for
        (its share moved back meanwhile): sent back with the next announcement."""
        self.returns: dict[str, float] = {}
        """Per key, tokens this replica released that others sent back."""
        self.limits: dict[str, int] = {}
        """Limit of each key this replica saw a request for (announced with its demand)."""
        self.held: set[str] = set()
        """Keys this replica holds a bucket of (kept by its ``RateLimiter``)."""
        self.unheld: dict[str, tuple[int, Shares]] = {}
        """Keys a peer started to ask for that this replica holds no bucket of: (limit, split
        before): its bucket there is full at its share of that split, and it gives up what it
        loses of it."""

    # -- membership ------------------------------------------------------------------------

    def heard(
        self,
        replica_id: str,
        boot: str,
        demand: dict[str, float],
        released: dict[str, dict[str, float]],
        leaving: bool = False,
        limits: dict[str, int] | None = None,
        returned: dict[str, dict[str, float]] | None = None,
    ) -> bool:
        """A heartbeat (this replica's own too, heard back); True when it comes from a replica
        new to this one (joined or restarted)."""
        if replica_id == self.replica_id:
            # Its own demand counts from when its peers hear it too, so all split alike.
            if demand != self.demand:
                self.demand = dict(demand)
                self._changed()
            return False
        new = False
        if limits:
            self._note_unheld(demand, limits)
        if leaving:
            if self.peers.pop(replica_id, None) is not None:
                self._changed()
        else:
            peer = self.peers.get(replica_id)
            new = peer is None or peer.boot != boot
            if new or peer is None or peer.demand != demand:
                self.peers[replica_id] = Peer(boot, self._clock(), dict(demand))
                self._changed()
            else:
                peer.last_seen = self._clock()
        for key, parts in released.items():
            tokens = parts.get(self.replica_id, 0.0)
            if tokens > 0:
                self.incoming.setdefault(key, []).append((replica_id, tokens))
        for key, back in (returned or {}).items():
            tokens = back.get(self.replica_id, 0.0)
            if tokens > 0:
                self.returns[key] = self.returns.get(key, 0.0) + tokens
        return new

    def _note_unheld(self, demand: dict[str, float], limits: dict[str, int]) -> None:
        for key in demand:
            if key in self.held or key in self.unheld:
                continue
            limit = limits.get(key)
            if limit is not None and limit > 0:
                self.unheld[key] = (limit, self.shares(key, limit))
        if len(self.unheld) > MAX_REPORTED_KEYS:
            self.unheld.clear()  # full at the current share, then: fewer tokens move, not more

    def expire(self) -> list[str]:
        """Drop the peers not heard for ``expire_after_s`` (none while frozen); their ids."""
        if self._frozen:
            return []
        limit = self._clock() - self.expire_after_s
        gone = [rid for rid, peer in self.peers.items() if peer.last_seen < limit]
        for rid in gone:
            del self.peers[rid]
        if gone:
            self._changed()
        return gone

    def freeze(self) -> None:
        """The broker link is down: nobody can be heard, so nobody expires (last shares kept)."""
        self._frozen = True

    def thaw(self) -> None:
        """The link is back: every peer gets a full expiry period to be heard again."""
        if self._frozen:
            now = self._clock()
            for peer in self.peers.values():
                peer.last_seen = now
            self._frozen = False

    def live(self) -> list[str]:
        return sorted([self.replica_id, *self.peers])

    def _changed(self) -> None:
        self.version += 1
        if len(self._cache) > 2 * MAX_REPORTED_KEYS:
            self._cache.clear()

    # -- demand ----------------------------------------------------------------------------

    def note(self, key: str, limit: int) -> None:
        """One request attempted on ``key`` here (allowed or not: demand, not admissions)."""
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        self.limits[key] = limit

    def released_only(self) -> Report:
        """What a release between two heartbeats announces: the demand as last announced
        (unchanged for everyone) and the tokens released since."""
        return Report(
            dict(self._announced),
            {key: self.limits[key] for key in self._announced if key in self.limits},
            *self._handovers(),
        )

    def _handovers(self) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        released, self.released = self.released, {}
        returned, self.returned = self.returned, {}
        return (
            {key: {rid: round(v, 4) for rid, v in to.items()} for key, to in released.items()},
            {key: {rid: round(v, 4) for rid, v in back.items()} for key, back in returned.items()},
        )

    def report(self) -> Report:
        """Fold the requests since the last report into this replica's demand and hand over what
        the next heartbeat announces (the demand, the tokens released since the last one)."""
        now = self._clock()
        elapsed = max(now - self._last_report, 1e-3)
        self._last_report = now
        counts, self._counts = self._counts, {}
        demand: dict[str, float] = {}
        for key in self._announced.keys() | counts.keys():
            value = SMOOTHING * counts.get(key, 0) / elapsed + (
                1 - SMOOTHING
            ) * self._announced.get(key, 0.0)
            if value >= MIN_DEMAND:
                demand[key] = value
        if len(demand) > MAX_REPORTED_KEYS:
            top = sorted(demand.items(), key=lambda item: item[1], reverse=True)
            demand = dict(top[:MAX_REPORTED_KEYS])
        self._announced = demand
        self.limits = {key: limit for key, limit in self.limits.items() if key in demand}
        return Report(
            dict(demand),
            {key: self.limits[key] for key in demand if key in self.limits},
            *self._handovers(),
        )

    # -- shares ----------------------------------------------------------------------------

    def shares(self, key: str, limit: int) -> Shares:
        """``limit`` split over the live replicas by their announced demand for ``key``."""
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self.version and cached[1] == limit:
            return cached[2]
        if not self.peers:
            split = {self.replica_id: float(limit)}
        else:
            demand = {self.replica_id: self.demand.get(key, 0.0)}
            for rid, peer in self.peers.items():
                demand[rid] = peer.demand.get(key, 0.0)
            total = sum(demand.values())
            if total <= 0.0:
                even = float(limit) / len(demand)
                split = dict.fromkeys(demand, even)
            else:
                floor = FLOOR * total / len(demand)
                weights = {rid: value + floor for rid, value in demand.items()}
                whole = sum(weights.values())
                split = {rid: limit * weight / whole for rid, weight in weights.items()}
        self._cache[key] = (self.version, limit, split)
        return split

    def release(self, key: str, tokens: float, split: Shares, before: Shares | None = None) -> None:
        """This replica gave ``tokens`` of ``key`` up (its share shrank, or it leaves): they go
        to the replicas whose share grew since ``before`` (the split this replica's bucket was
        last sized by), each by its growth, since those have room for them; to every other
        replica by its share in ``split`` when none grew (or on leaving). This replica's view
        when giving up; the parts are named in the announcement, so they sum to what was given.

        By share alone, a release would also go to the replicas whose share shrank as well, full
        buckets at the start of a burst: they would send it back to a releaser that is full too,
        and the tokens would be lost (fewer requests let through than the limit)."""
        if tokens <= 0:
            return
        weights: dict[str, float] = {}
        if before is not None:
            for rid, share in split.items():
                grown = share - before.get(rid, 0.0)
                if rid != self.replica_id and grown > 1e-9:
                    weights[rid] = grown
        if not weights:
            weights = {rid: share for rid, share in split.items() if rid != self.replica_id}
        whole = sum(weights.values())
        if whole <= 0:
            return
        to = self.released.setdefault(key, {})
        for rid, weight in weights.items():
            to[rid] = to.get(rid, 0.0) + tokens * weight / whole

    def send_back(self, key: str, releaser: str, tokens: float) -> None:
        """Tokens ``releaser`` released to this replica that it has no room for."""
        if tokens > 1e-4 and releaser != self.replica_id:
            back = self.returned.setdefault(key, {})
            back[releaser] = back.get(releaser, 0.0) + tokens


class _Bucket:
    __slots__ = ("capacity", "limit", "rate", "split", "tokens", "updated")

    def __init__(self, limit: int, capacity: float, now: float) -> None:
        self.limit = limit
        self.capacity = capacity
        self.rate = capacity / 60.0
        self.tokens = capacity
        self.updated = now
        self.split: Shares | None = None
        """The split of the key's limit this bucket was last settled with (``None``: no peers
        to split with): whose share grows from it is where a release goes."""


def resplit_tokens(tokens: float, old_share: float, new_share: float) -> tuple[float, float]:
    """A bucket's tokens after its share moves from ``old_share`` to ``new_share``, and the
    tokens it gives up: a shrinking bucket keeps its fill (and gives up the rest), a growing one
    keeps its tokens (it receives what others give up); never refilled."""
    if new_share < old_share:
        kept = tokens * new_share / old_share if old_share > 0 else 0.0
        return kept, tokens - kept
    return min(tokens, new_share), 0.0


class RateLimiter:
    """One bucket per key, of this replica's share of the key's limit (the whole limit without
    ``shares``, or alone); a changed limit takes effect at once. Not thread-safe (one loop)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        shares: ShareBook | None = None,
    ) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys
        self.shares = shares

    def take(self, key: str, limit_per_minute: int) -> RateDecision:
        now = self._clock()
        limit = max(1, limit_per_minute)
        book = self.shares
        share = float(limit)
        if book is not None:
            book.note(key, limit)
            share = book.shares(key, limit)[book.replica_id]
        bucket = self._buckets.get(key)
        if bucket is None or bucket.limit != limit:
            bucket = self._new_bucket(key, limit, share, now)
        else:
            refill = (now - bucket.updated) * bucket.rate
            bucket.tokens = min(bucket.capacity, bucket.tokens + refill)
            bucket.updated = now
            if book is not None and (
                share != bucket.capacity or key in book.incoming or key in book.returns
            ):
                self._settle(book, key, bucket, share)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            allowed = True
            retry = 0
        else:
            allowed = False
            retry = max(1, math.ceil((1.0 - bucket.tokens) / bucket.rate))
        reset = math.ceil((bucket.capacity - bucket.tokens) / bucket.rate)
        return RateDecision(allowed, limit, int(bucket.tokens), reset, retry)

    def _new_bucket(self, key: str, limit: int, share: float, now: float) -> _Bucket:
        """A full bucket; of the share held before a peer asked for the key, when one did
        (then brought to the current share, giving up the difference)."""
        book = self.shares
        if len(self._buckets) >= self._max_keys:
            self._buckets.clear()
            if book is not None:
                book.held.clear()
        if book is None:
            bucket = self._buckets[key] = _Bucket(limit, share, now)
            return bucket
        before = book.unheld.pop(key, None)
        if before is not None and before[0] == limit:
            split = before[1]
            capacity = split.get(book.replica_id, share)
        else:
            split, capacity = book.shares(key, limit), share
        bucket = self._buckets[key] = _Bucket(limit, capacity, now)
        bucket.split = split
        book.held.add(key)
        for releaser, tokens in book.incoming.pop(key, ()):  # a full bucket has no room
            book.send_back(key, releaser, tokens)
        book.returns.pop(key, None)
        if capacity != share:
            self._settle(book, key, bucket, share)
        return bucket

    def _settle(self, book: ShareBook, key: str, bucket: _Bucket, share: float) -> None:
        """Bring ``bucket`` to this replica's current share of its key, then add what others
        released to it (capped at its capacity)."""
        split = book.shares(key, bucket.limit)
        if share != bucket.capacity:
            bucket.tokens, given = resplit_tokens(bucket.tokens, bucket.capacity, share)
            book.release(key, given, split, bucket.split)
            bucket.capacity = share
            bucket.rate = share / 60.0
        bucket.split = split
        returns = book.returns.pop(key, 0.0)
        if returns:  # what this replica released and others had no room for (rest: dropped)
            bucket.tokens = min(bucket.capacity, bucket.tokens + returns)
        parts = book.incoming.pop(key, None)
        if parts:
            received = sum(part for _, part in parts)
            room = max(0.0, bucket.capacity - bucket.tokens)
            if received > room:
                # The share moved back before the release came: the rest goes back to its
                # releaser rather than being lost (or kept beyond this replica's share).
                for releaser, part in parts:
                    book.send_back(key, releaser, part * (received - room) / received)
                received = room
            bucket.tokens += received

    def settle(self) -> None:
        """Every bucket brought to now and to its current share, with the tokens released to it
        (a replica nobody sends a key to any more gives that share up too); run before each
        heartbeat."""
        book = self.shares
        if book is None:
            return
        now = self._clock()
        for key, (limit, _) in list(book.unheld.items()):
            self._new_bucket(key, limit, book.shares(key, limit)[book.replica_id], now)
        for key, bucket in self._buckets.items():
            bucket.tokens = min(
                bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.rate
            )
            bucket.updated = now
            self._settle(book, key, bucket, book.shares(key, bucket.limit)[book.replica_id])
        for key, incoming in book.incoming.items():  # keys it holds no bucket of: full already
            for releaser, tokens in incoming:
                book.send_back(key, releaser, tokens)
        book.incoming.clear()
        book.returns.clear()

    def release_all(self) -> None:
        """This replica leaves: every token it holds goes to the others (in its goodbye)."""
        book = self.shares
        if book is None:
            return
        self.settle()
        for key, bucket in self._buckets.items():
            book.release(key, bucket.tokens, book.shares(key, bucket.limit))
            bucket.tokens = 0.0

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)
        if self.shares is not None:
            self.shares.held.discard(key)
