"""The login throttle's policy on a fake clock: free failures, doubling locks that expire, the
trusted-address escape from lock-outs, and a bounded memory."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from management_api.login_throttle import (
    LoginThrottle,
    LoginThrottled,
    ThrottlePolicy,
    address_key,
    client_address,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def fail(throttle: LoginThrottle, username: str, address: str) -> None:
    attempt = await throttle.begin(username, address)
    attempt.failed()
    attempt.close()


async def succeed(throttle: LoginThrottle, username: str, address: str) -> None:
    attempt = await throttle.begin(username, address)
    attempt.succeeded()
    attempt.close()


POLICY = ThrottlePolicy(per_username=3, per_address=5, first_lock_s=2, max_lock_s=60)


async def test_past_the_free_failures_attempts_are_refused_by_a_doubling_lock_that_expires() -> (
    None
):
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    for _ in range(3):
        await fail(throttle, "alice", "10.0.0.1")
    with pytest.raises(LoginThrottled) as refused:
        await throttle.begin("alice", "10.0.0.1")
    assert refused.value.retry_after_s == 2 and refused.value.reason == "username"
    clock.now += 2
    await fail(throttle, "ALICE", "10.0.0.1")  # case does not give a fresh counter
    with pytest.raises(LoginThrottled) as refused:
        await throttle.begin("alice", "10.0.0.2")
    assert refused.value.retry_after_s == 4
    clock.now += 4
    for expected in (8, 16, 32, 60, 60):  # capped: never locked out for good
        await fail(throttle, "alice", "10.0.0.1")
        with pytest.raises(LoginThrottled) as refused:
            await throttle.begin("alice", "10.0.0.9")
        assert refused.value.retry_after_s == expected
        clock.now += expected


async def test_refused_attempts_do_not_extend_the_lock_and_a_quiet_period_forgets() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    for _ in range(3):
        await fail(throttle, "bob", "10.0.0.1")
    for _ in range(50):
        with pytest.raises(LoginThrottled):
            await throttle.begin("bob", "10.0.0.1")
    clock.now += 2
    (await throttle.begin("bob", "10.0.0.1")).close()  # the lock ran out despite the hammering
    clock.now += POLICY.forget_s + 1
    for _ in range(3):
        await fail(throttle, "bob", "10.0.0.1")  # three free failures again
    assert len(throttle.usernames) == 1


async def test_one_address_guessing_many_usernames_is_locked() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    for i in range(5):
        await fail(throttle, f"user{i}", "10.0.0.7")
    with pytest.raises(LoginThrottled) as refused:
        await throttle.begin("someone-else", "10.0.0.7")
    assert refused.value.reason == "address"
    (await throttle.begin("someone-else", "10.0.0.8")).close()


async def test_a_parallel_burst_of_guesses_gets_only_the_free_attempts_checked() -> None:
    """Attempts beyond the free ones wait for the verdicts in flight: failures lock them out."""
    throttle = LoginThrottle(POLICY, Clock())
    burst = [asyncio.create_task(throttle.begin("carol", "10.0.0.1")) for _ in range(20)]
    await asyncio.sleep(0.01)
    admitted = [task.result() for task in burst if task.done()]
    assert len(admitted) == 3
    for attempt in admitted:
        attempt.failed()
    refused = await asyncio.gather(*burst[3:], return_exceptions=True)
    assert all(isinstance(r, LoginThrottled) for r in refused), refused


async def test_a_parallel_burst_of_right_passwords_all_get_in() -> None:
    """Successes free the way for the attempts waiting behind them."""
    throttle = LoginThrottle(POLICY, Clock())

    async def log_in() -> None:
        attempt = await throttle.begin("erin", "10.0.0.1")
        await asyncio.sleep(0.001)  # the password check
        attempt.succeeded()

    await asyncio.wait_for(asyncio.gather(*(log_in() for _ in range(20))), 10)
    assert not throttle.usernames.busy("erin", 0) and not throttle.addresses.busy("10.0.0.1", 0)


async def test_an_attacker_cannot_lock_a_user_out_of_the_address_she_already_used() -> None:
    clock = Clock()
    throttle = LoginThrottle(POLICY, clock)
    await succeed(throttle, "alice", "192.0.2.10")
    for _ in range(3):
        await fail(throttle, "alice", "203.0.113.5")
    with pytest.raises(LoginThrottled):
        await throttle.begin("alice", "198.51.100.1")  # locked for every address she never used
    await succeed(throttle, "alice", "192.0.2.10")  # not for hers
    with pytest.raises(LoginThrottled):  # and her logging in does not lift the guesser's lock
        await throttle.begin("alice", "203.0.113.5")
    # Her address is held by its own pair counter: guessing from there is still limited.
    for _ in range(3):
        await fail(throttle, "alice", "192.0.2.10")
    with pytest.raises(LoginThrottled):
        await throttle.begin("alice", "192.0.2.10")


async def test_a_success_does_not_reset_the_address_count() -> None:
    throttle = LoginThrottle(POLICY, Clock())
    for i in range(4):
        await fail(throttle, f"victim{i}", "10.0.0.66")
    await succeed(throttle, "mallory", "10.0.0.66")
    await fail(throttle, "victim9", "10.0.0.66")
    with pytest.raises(LoginThrottled):
        await throttle.begin("victim10", "10.0.0.66")


async def test_an_attempt_without_a_verdict_releases_its_reservation() -> None:
    throttle = LoginThrottle(POLICY, Clock())
    for _ in range(10):
        (await throttle.begin("dave", "10.0.0.1")).close()
    assert await throttle.begin("dave", "10.0.0.1")


async def test_memory_stays_bounded_under_a_flood_of_usernames_and_addresses() -> None:
    policy = ThrottlePolicy(per_username=3, per_address=10**9, capacity=100)
    throttle = LoginThrottle(policy, Clock())
    for i in range(5000):
        await fail(throttle, f"u{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        await succeed(throttle, f"s{i}", "10.0.0.1")
    assert len(throttle.usernames) <= 100 and len(throttle.addresses) <= 100
    assert len(throttle.pairs) <= 100 and len(throttle._trusted) <= 100


async def test_ipv6_addresses_are_throttled_by_their_64_so_rotating_them_does_not_help() -> None:
    throttle = LoginThrottle(POLICY, Clock())
    for i in range(5):
        await fail(throttle, f"user{i}", f"2001:db8:1:2::{i + 1:x}")
    with pytest.raises(LoginThrottled):
        await throttle.begin("another", "2001:db8:1:2:ffff::9")
    (await throttle.begin("another", "2001:db8:1:3::1")).close()
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7" and address_key("unknown") == "unknown"


def test_x_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    """A client cannot choose its throttle key: the header is read only from configured proxies,
    and then the right-most hop that is not a proxy is the client."""
    proxies = [ipaddress.ip_network("10.0.0.0/24")]
    assert client_address("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"
    assert client_address("10.0.0.5", "1.2.3.4, 198.51.100.7", proxies) == "198.51.100.7"
    assert client_address("10.0.0.5", "198.51.100.7, 10.0.0.9", proxies) == "198.51.100.7"
    assert client_address("10.0.0.5", None, proxies) == "10.0.0.5"
    assert client_address(None, "1.2.3.4", proxies) == "unknown"
    throttle = LoginThrottle(ThrottlePolicy(trusted_proxies=("10.0.0.0/24",)))
    assert throttle.client_address("10.0.0.1", "192.0.2.1") == "192.0.2.1"
