"""Slowing password guessers down without handing them a way to lock real users out.

Failed logins are counted per username, per client address, and per (username, address) pair.
Past a few free failures a key is locked for a time that doubles with each further failure, up to
a cap; a quiet period forgets the count. While a key is locked its attempts are answered 429 with
``Retry-After`` and no password is checked, so a correct guess is indistinguishable from a wrong
one. Unknown usernames are counted exactly like real ones (the answers reveal nothing).

Lock-out resistance: an address a user has logged in from successfully is *trusted* for that user,
and a trusted pair is held only by its own pair counter, not by the username's or the address's.
An attacker hammering ``alice`` from elsewhere locks ``alice`` for every other address, but not for
Alice at the address she already used; a busy NAT's address lock does not stop its known users.
A success resets the pair's count and, from an address not yet trusted, the username's; never the
address's (logging in to your own account between guesses buys nothing), nor the username's lock
when the user got past it from her trusted address (her logins give the guesser nothing).

Attempts sent in parallel are admitted only up to the failures a key has left; the rest wait for
those verdicts (a success lets them through, failures lock them out), so a burst of guesses gets
no more checked than a sequence would.

Memory is bounded: each table keeps at most ``capacity`` keys, forgetting the least recently
failed (and anything quiet for ``forget_s``) first.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)


def address_key(address: str) -> str:
    """The throttle's key for a client address: IPv4 as is, IPv6 by its /64 (one machine is
    usually given a whole /64, so single addresses would be free to rotate through)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]
) -> str:
    """Who the client is: the TCP peer, unless the peer is a trusted proxy; then the right-most
    ``X-Forwarded-For`` hop that is not one (the address the outermost trusted proxy saw). From
    any other peer the header is ignored: a client cannot choose its own throttle key."""
    if peer is None:
        return "unknown"

    def trusted(hop: str) -> bool:
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return False
        return any(ip in network for network in trusted_proxies)

    if not forwarded_for or not trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return hops[0] if hops else peer


@dataclass
class _Failures:
    count: int = 0
    pending: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


class FailureTable:
    """Failures per key with exponential lock-out; ``capacity`` keys at most."""

    def __init__(
        self,
        free: int,
        first_lock_s: float,
        max_lock_s: float,
        forget_s: float,
        capacity: int,
    ) -> None:
        self.free = free
        self.first_lock_s = first_lock_s
        self.max_lock_s = max_lock_s
        self.forget_s = forget_s
        self.capacity = capacity
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def _get(self, key: str, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and entry.pending == 0 and now - entry.last_failure > self.forget_s:
            if now >= entry.locked_until:
                del self._keys[key]
                return None
        return entry

    def locked_s(self, key: str, now: float) -> float:
        """Seconds ``key`` stays locked (0: not locked)."""
        entry = self._get(key, now)
        return max(0.0, entry.locked_until - now) if entry is not None else 0.0

    def busy(self, key: str, now: float) -> bool:
        """Whether the attempts in flight already use the failures ``key`` has left: one more
        must wait for their verdicts (a burst sent in parallel must not get more guesses checked
        than the free ones before the first failure is counted)."""
        entry = self._get(key, now)
        return entry is not None and entry.pending > 0 and entry.count + entry.pending >= self.free

    def reserve(self, key: str, now: float) -> None:
        entry = self._get(key, now)
        if entry is None:
            entry = self._keys[key] = _Failures(last_failure=now)
            self._evict()
        entry.pending += 1

    def release(self, key: str) -> None:
        entry = self._keys.get(key)
        if entry is not None and entry.pending:
            entry.pending -= 1

    def fail(self, key: str, now: float) -> float:
        """Count a failure (after ``reserve``); the lock it starts, in seconds (0: none)."""
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = _Failures()
            self._evict()
        else:
            entry.pending = max(0, entry.pending - 1)
            if now - entry.last_failure > self.forget_s:
                entry.count = 0
        entry.count += 1
        entry.last_failure = now
        self._keys.move_to_end(key)
        if entry.count < self.free:
            return 0.0
        lock: float = min(self.max_lock_s, self.first_lock_s * 2.0 ** (entry.count - self.free))
        entry.locked_until = max(entry.locked_until, now + lock)
        return lock

    def reset(self, key: str) -> None:
        entry = self._keys.get(key)
        if entry is not None:
            if entry.pending > 1:
                entry.pending -= 1
                entry.count, entry.locked_until = 0, 0.0
            else:
                del self._keys[key]

    def _evict(self) -> None:
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free and how long locks last (see the module docstring)."""

    per_username: int = 5
    per_address: int = 20
    first_lock_s: float = 2.0
    max_lock_s: float = 300.0
    forget_s: float = 900.0
    capacity: int = 10_000
    max_queued: int = 256
    """Attempts that may wait for earlier attempts' verdicts, over all keys; more get 429."""
    queue_timeout_s: float = 30.0
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks of reverse proxies whose ``X-Forwarded-For`` names the client."""


class LoginThrottled(Exception):
    """Too many failed logins for this username or address; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: int, reason: str) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s
        self.reason = reason


class LoginAttempt:
    """One admitted attempt: call ``failed()`` or ``succeeded()``; ``close()`` always."""

    def __init__(self, throttle: LoginThrottle, username: str, address: str, now: float) -> None:
        self._throttle = throttle
        self.username = username
        self.address = address
        self._open = True
        throttle._reserve(self, now)

    def failed(self) -> None:
        if self._open:
            self._open = False
            self._throttle._failed(self)

    def succeeded(self) -> None:
        if self._open:
            self._open = False
            self._throttle._succeeded(self)

    def close(self) -> None:
        """Forget an attempt that never reached a verdict (an error, a cancelled request)."""
        if self._open:
            self._open = False
            self._throttle._release(self)


class LoginThrottle:
    """Admits or refuses login attempts by username and client address (in memory, per process)."""

    def __init__(
        self, policy: ThrottlePolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy = policy or ThrottlePolicy()
        self._clock = clock

        def table(free: int) -> FailureTable:
            return FailureTable(
                free, policy.first_lock_s, policy.max_lock_s, policy.forget_s, policy.capacity
            )

        self.usernames = table(policy.per_username)
        self.addresses = table(policy.per_address)
        self.pairs = table(policy.per_username)
        self._trusted: OrderedDict[str, None] = OrderedDict()
        self._verdict = asyncio.Event()
        self._queued = 0
        self.trusted_proxies = [
            ipaddress.ip_network(proxy, strict=False) for proxy in policy.trusted_proxies
        ]

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_address(peer, forwarded_for, self.trusted_proxies)

    @staticmethod
    def _pair(username: str, address: str) -> str:
        return f"{username}\n{address}"

    def _tables(self, username: str, address: str) -> list[tuple[FailureTable, str, str]]:
        pair = self._pair(username, address)
        if pair in self._trusted:
            return [(self.pairs, pair, "username")]
        return [(self.usernames, username, "username"), (self.addresses, address, "address")]

    async def begin(self, username: str, address: str) -> LoginAttempt:
        """An attempt to check the password, or ``LoginThrottled`` (nothing is checked).

        An attempt over the free budget while others are in flight waits for their verdicts: a
        success frees the way (a burst of right passwords all get in), failures lock the key.
        """
        username, address = username.lower(), address_key(address)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.queue_timeout_s
        while True:
            now = self._clock()
            tables = self._tables(username, address)
            wait, reason = max((table.locked_s(key, now), why) for table, key, why in tables)
            if wait > 0:
                raise LoginThrottled(max(1, math.ceil(wait)), reason)
            busy = [why for table, key, why in tables if table.busy(key, now)]
            if not busy:
                return LoginAttempt(self, username, address, now)
            if self._queued >= self.policy.max_queued or loop.time() >= deadline:
                raise LoginThrottled(1, busy[0])
            verdict = self._verdict
            self._queued += 1
            try:
                async with asyncio.timeout_at(deadline):
                    await verdict.wait()
            except TimeoutError:
                pass  # checked again at the top, then refused
            finally:
                self._queued -= 1

    def _announce_verdict(self) -> None:
        self._verdict.set()
        self._verdict = asyncio.Event()

    def _reserve(self, attempt: LoginAttempt, now: float) -> None:
        self.usernames.reserve(attempt.username, now)
        self.addresses.reserve(attempt.address, now)
        self.pairs.reserve(self._pair(attempt.username, attempt.address), now)

    def _release(self, attempt: LoginAttempt) -> None:
        self.usernames.release(attempt.username)
        self.addresses.release(attempt.address)
        self.pairs.release(self._pair(attempt.username, attempt.address))
        self._announce_verdict()

    def _failed(self, attempt: LoginAttempt) -> None:
        now = self._clock()
        locks = {
            "username": self.usernames.fail(attempt.username, now),
            "address": self.addresses.fail(attempt.address, now),
            "pair": self.pairs.fail(self._pair(attempt.username, attempt.address), now),
        }
        self._announce_verdict()
        started = {k: round(v, 1) for k, v in locks.items() if v}
        if started:
            log.warning(
                "login throttled: username %r from %s locked for %s",
                attempt.username,
                attempt.address,
                started,
            )

    def _succeeded(self, attempt: LoginAttempt) -> None:
        pair = self._pair(attempt.username, attempt.address)
        if pair in self._trusted:
            # Her known address got her past the username's lock: that lock is a guesser's
            # doing elsewhere, and her logging in must not hand them fresh attempts.
            self.usernames.release(attempt.username)
        else:
            self.usernames.reset(attempt.username)
        self.pairs.reset(pair)
        self.addresses.release(attempt.address)
        self._trusted[pair] = None
        self._trusted.move_to_end(pair)
        while len(self._trusted) > self.policy.capacity:
            self._trusted.popitem(last=False)
        self._announce_verdict()
