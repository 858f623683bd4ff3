"""Logins against the real app (real RabbitMQ namespace, real ClickHouse): password hashing stays
off the event loop so other routes answer during a login burst, and guessers get 429 with
``Retry-After`` per username and per client address, without locking a user out of her own
address."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from management_api.keys import ACCOUNTS
from tests.management_support import ADMIN_PASSWORD, Api, MakeApi

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PER_USERNAME = 5
PER_ADDRESS = 8


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """The management API with locks long enough (60 s) that no test outlives one by accident."""
    return await make_api(
        management_login_failures_per_username=PER_USERNAME,
        management_login_failures_per_address=PER_ADDRESS,
        management_login_first_lock_s=60.0,
    )


async def login(
    api: Api, username: str, password: str, source: str | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST /api/auth/token, from the test client or from another loopback ``source`` address."""
    body = {"username": username, "password": password}
    if source is None:
        r = await api.client.post("/api/auth/token", json=body)
        return r.status, await r.json(), dict(r.headers)
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(api.client.make_url("/api/auth/token"), json=body) as r:
            return r.status, await r.json(), dict(r.headers)


async def test_other_routes_answer_while_a_burst_of_logins_is_hashing(api: Api) -> None:
    """While a burst of 24 logins is in flight (queued for the hash workers), /health and an
    authenticated route answer before the burst is over, and every login then succeeds."""
    headers = await api.new_user("burst")
    hashing = api.client.app[ACCOUNTS].hashing
    logins = [asyncio.create_task(login(api, "burst", "burst-password")) for _ in range(24)]
    try:
        async with asyncio.timeout(120):
            # Until the burst queues for the hash workers (or, hashing on the loop, is all over).
            while hashing.waiting == 0 and not all(task.done() for task in logins):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        health = await api.client.get("/health")
        me, _ = await api.call("GET", "/api/users/me", headers)
        in_flight = sum(not task.done() for task in logins)
        assert health.status == 200 and me == 200
        assert in_flight > 0, "the other routes answered only after every login"
    finally:
        results = await asyncio.gather(*logins)
    assert [status for status, _, _ in results] == [200] * 24


async def test_the_nth_wrong_password_for_a_username_gets_429_with_retry_after(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """After 5 wrong passwords the 6th attempt is refused 429 with Retry-After, even with the
    right password (nothing is checked while locked); a username that does not exist behaves
    the same; failures are logged without the password."""
    await api.new_user("target")
    caplog.set_level(logging.WARNING, logger="management_api")
    for name, source in (("target", "127.0.0.8"), ("nobody-by-that-name", "127.0.0.9")):
        for i in range(PER_USERNAME):
            status, body, _ = await login(api, name, f"guess-number-{i}", source)
            assert status == 401 and body["error"]["code"] == "INVALID_CREDENTIALS"
        status, body, headers = await login(api, name.upper(), "target-password", source)
        assert status == 429, body
        assert body["error"]["code"] == "RATE_LIMITED"
        assert int(headers["Retry-After"]) >= 1
        assert body["error"]["details"]["retry_after_s"] == int(headers["Retry-After"])
        assert body["error"]["details"]["limited_by"] == "username"
    logged = caplog.text
    assert "failed login for username 'target'" in logged
    assert "guess-number" not in logged and "target-password" not in logged
    # Another user is not affected by target's lock.
    assert await api.token("admin", ADMIN_PASSWORD)


async def test_one_address_trying_many_usernames_gets_429(api: Api) -> None:
    """Eight wrong logins over eight usernames from one address lock that address (429), while
    another address still gets ordinary answers."""
    for i in range(PER_ADDRESS):
        status, _, _ = await login(api, f"sprayed-{i}", "Winter2026!", source="127.0.0.2")
        assert status == 401
    status, body, headers = await login(api, "sprayed-x", "Winter2026!", source="127.0.0.2")
    assert status == 429 and body["error"]["details"]["limited_by"] == "address"
    assert int(headers["Retry-After"]) >= 1
    status, _, _ = await login(api, "sprayed-x", "Winter2026!", source="127.0.0.3")
    assert status == 401


async def test_a_guesser_cannot_lock_a_user_out_of_the_address_she_logged_in_from(
    api: Api,
) -> None:
    """Someone hammering `victim` from elsewhere locks `victim` for unknown addresses, but
    `victim` still logs in from the address she used before; usernames log in in any case."""
    await api.new_user("victim")
    status, _, _ = await login(api, "Victim", "victim-password", source="127.0.0.4")
    assert status == 200
    for i in range(PER_USERNAME):
        status, _, _ = await login(api, "victim", f"guess-{i}", source="127.0.0.5")
        assert status == 401
    status, _, _ = await login(api, "victim", "victim-password", source="127.0.0.6")
    assert status == 429
    status, body, _ = await login(api, "VICTIM", "victim-password", source="127.0.0.4")
    assert status == 200 and body["user"]["username"] == "victim"


async def test_usernames_differing_only_by_case_are_refused_over_http(api: Api) -> None:
    """POST /api/users with `Alice` when `alice` exists answers 409 and creates nothing."""
    admin = await api.admin()
    await api.new_user("alice")
    status, body = await api.call(
        "POST",
        "/api/users",
        admin,
        json={"username": "Alice", "password": "another-password", "role": "user"},
    )
    assert status == 409 and body["error"]["code"] == "CONFLICT"
    _, users = await api.call("GET", "/api/users", admin)
    assert [u["username"] for u in users["items"] if u["username"].lower() == "alice"] == ["alice"]
