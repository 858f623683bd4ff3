"""Rate-limit shares across ingress replicas (``ingress.ratelimit``): the split, the re-split
arithmetic and membership, without a broker (heartbeats passed by hand on a fake clock)."""

from __future__ import annotations

import random

import pytest

from ingress.ratelimit import RateLimiter, ShareBook, resplit_tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Cluster:
    """N replicas' limiters and books, their heartbeats delivered to each other at once."""

    def __init__(self, n: int, clock: Clock) -> None:
        self.clock = clock
        self.books = [ShareBook(f"r{i}", expire_after_s=3.5, clock=clock) for i in range(n)]
        self.limiters = [RateLimiter(clock=clock, shares=book) for book in self.books]

    def heartbeat(self, alive: list[int] | None = None) -> None:
        alive = list(range(len(self.books))) if alive is None else alive
        for i in alive:
            self.limiters[i].settle()
        reports = {i: self.books[i].report() for i in alive}
        for i, report in reports.items():
            for j in alive:
                self.books[j].heard(
                    f"r{i}",
                    f"boot{i}",
                    report.demand,
                    report.released,
                    limits=report.limits,
                    returned=report.returned,
                )
        for j in alive:
            self.books[j].expire()


def test_alone_the_bucket_is_the_whole_limit_as_before_heartbeats_or_not() -> None:
    clock = Clock()
    book = ShareBook("solo", clock=clock)
    limiter, plain = RateLimiter(clock=clock, shares=book), RateLimiter(clock=clock)
    for n in range(150):
        a, b = limiter.take("api", 100), plain.take("api", 100)
        assert (a.allowed, a.remaining, a.limit) == (b.allowed, b.remaining, b.limit)
        if n % 10 == 0:
            limiter.settle()  # its own heartbeat changes nothing when alone
            book.report()
            clock.now += 0.01
            plain.take("other", 1)
    assert sum(limiter.take("x", 100).allowed for _ in range(200)) == 100


def test_every_replica_computes_the_same_shares_and_they_sum_to_the_limit() -> None:
    clock = Clock()
    cluster = Cluster(3, clock)
    for i, count in enumerate([50, 5, 0]):
        for _ in range(count):
            cluster.limiters[i].take("api", 100)
    clock.now += 1.0
    cluster.heartbeat()
    splits = [book.shares("api", 100) for book in cluster.books]
    assert splits[0] == splits[1] == splits[2]
    assert sum(splits[0].values()) == pytest.approx(100.0)
    assert splits[0]["r0"] > splits[0]["r1"] > splits[0]["r2"] > 0
    # Without demand anywhere the split is even.
    assert cluster.books[0].shares("idle", 90) == pytest.approx({"r0": 30, "r1": 30, "r2": 30})


def test_a_resplit_rescales_the_tokens_and_never_refills_a_bucket() -> None:
    # Shrinking: the bucket keeps its fill and gives the rest up.
    assert resplit_tokens(tokens=5, old_share=50, new_share=10) == (1, 4)
    assert resplit_tokens(tokens=50, old_share=50, new_share=10) == (10, 40)
    # Growing: it keeps its tokens (no refill); it receives what the others give up.
    assert resplit_tokens(tokens=10, old_share=20, new_share=80) == (10, 0)
    # A release is shared out by share among the replicas other than the releaser.
    book = ShareBook("c", clock=Clock())
    book.release("api", 9.0, {"a": 60.0, "b": 30.0, "c": 10.0})
    assert book.released_only().released == {"api": {"a": 6.0, "b": 3.0}}
    # Given the split the releaser's bucket was sized by, it goes to those whose share grew, by
    # their growth (b's shrank like c's: its bucket may be full, and it would be sent back).
    book.release("api", 9.0, {"a": 60.0, "b": 30.0, "c": 10.0}, before={"a": 30, "b": 40, "c": 30})
    assert book.released_only().released == {"api": {"a": 9.0}}


def tokens_of(cluster: Cluster, key: str, limit: int) -> float:
    """Every replica's tokens of ``key`` (a replica with no bucket holds its share, full)."""
    total = 0.0
    for limiter, book in zip(cluster.limiters, cluster.books, strict=True):
        limiter.settle()
        bucket = limiter._buckets.get(key)
        total += bucket.tokens if bucket else book.shares(key, limit)[book.replica_id]
    return total


@pytest.mark.parametrize(
    ("taken", "heartbeats"),
    [
        ([30, 3, 0], 3),
        # A burst on full buckets: r1 and r2 shrink while full; their releases must reach r0
        # (room), not each other (full: sent back to a releaser full too, and lost).
        ([20, 2, 0], 4),
    ],
)
def test_tokens_are_conserved_over_the_replicas_when_the_shares_move(
    taken: list[int], heartbeats: int
) -> None:
    clock = Clock()
    cluster = Cluster(3, clock)
    cluster.heartbeat()
    for i, count in enumerate(taken):
        for _ in range(count):
            cluster.limiters[i].take("api", 100)
    before = 100 - sum(taken)
    for _ in range(heartbeats):  # shares move towards r0 (the busiest); r2 gives its share up
        cluster.heartbeat()
    assert cluster.books[0].shares("api", 100)["r0"] > 80
    # Never more, and no less: r2's release goes to r0, whose share grew, not to r1 (full).
    assert tokens_of(cluster, "api", 100) == pytest.approx(before, abs=0.01)


def test_a_single_connection_client_gets_the_limit_after_a_heartbeat_and_no_more() -> None:
    clock = Clock()
    cluster = Cluster(3, clock)
    cluster.heartbeat()  # everyone knows everyone: each holds a third
    a = cluster.limiters[0]
    assert a.take("api", 100).remaining == 32  # 33.3 - 1
    clock.now += 1.0
    cluster.heartbeat()  # its demand announced: r0's share is now most of the limit
    assert cluster.books[0].shares("api", 100)["r0"] > 95
    cluster.heartbeat()  # the others give their tokens up to it
    allowed = 1 + sum(a.take("api", 100).allowed for _ in range(300))
    assert 95 <= allowed <= 101


def test_a_client_moving_between_replicas_gets_no_second_budget() -> None:
    """r0 drained with most of the share, r1 full with a small one: when the demand moves to r1,
    r1 gets the share but only the tokens the cluster still has."""
    clock = Clock()
    cluster = Cluster(2, clock)
    cluster.heartbeat()
    r0, r1 = cluster.limiters
    r0.take("api", 100)
    clock.now += 1.0
    cluster.heartbeat()
    cluster.heartbeat()
    used = 1 + sum(r0.take("api", 100).allowed for _ in range(200))
    assert used >= 95
    for _ in range(12):  # r0 idle, a trickle on r1 until the demand has moved there
        clock.now += 1.0
        used += r1.take("api", 100).allowed
        cluster.heartbeat()
    assert cluster.books[1].shares("api", 100)["r1"] > 90
    burst = sum(r1.take("api", 100).allowed for _ in range(200))
    # 12 s at 100/min refill 20 tokens over the cluster; without the global fill r1 would get ~95.
    assert burst + used <= 100 + 20 + 3, (burst, used)
    assert burst >= 5  # what is left still goes to where the client is


def test_a_departed_replica_gives_its_share_back_leaving_or_expired_not_while_frozen() -> None:
    clock = Clock()
    cluster = Cluster(3, clock)
    cluster.heartbeat()
    book = cluster.books[0]
    assert book.shares("api", 90)["r0"] == pytest.approx(30)
    book.heard("r2", "boot2", {}, {}, leaving=True)
    assert book.live() == ["r0", "r1"]
    assert book.shares("api", 90)["r0"] == pytest.approx(45)
    # r1 killed: not heard; still counted until 3.5 s of silence, then gone.
    clock.now += 3.0
    assert book.expire() == []
    book.freeze()  # our own broker link is down: nobody expires, the share stays
    clock.now += 60.0
    assert book.expire() == []
    assert book.shares("api", 90)["r0"] == pytest.approx(45)
    book.thaw()  # back: r1 gets a full period to be heard again
    clock.now += 3.6
    assert book.expire() == ["r1"]
    assert book.shares("api", 90) == {"r0": 90.0}


def test_spread_requests_over_three_replicas_let_the_limit_through_not_three_times_it() -> None:
    clock = Clock()
    cluster = Cluster(3, clock)
    cluster.heartbeat()
    rng = random.Random(7)
    allowed = 0
    for _second in range(30):  # 30 s, 40 requests/s landing on any replica
        for _ in range(40):
            allowed += cluster.limiters[rng.randrange(3)].take("api", 100).allowed
            clock.now += 0.025
        cluster.heartbeat()
    # One bucket of 100/min over 30 s: 100 + 50 at most; a little less for the floor shares.
    assert 135 <= allowed <= 151, allowed
