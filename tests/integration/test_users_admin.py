# ruff: noqa: F811
"""User administration (issue 11): admins create, promote, reset and deactivate accounts; a
deactivated account cannot log in and its tokens stop working; the last active admin is kept;
every user changes their own password, behind the login throttle. On the real app (real RabbitMQ
namespace, real ClickHouse), and the account rules once more on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from management_api.accounts import Accounts, Principal
from management_api.db import create_engine, migrate, session_factory
from management_api.errors import Conflict, Forbidden
from management_api.keys import ACCOUNTS
from management_api.security import TokenIssuer
from schemas.resources import Role, UserCreate, UserUpdate
from tests.integration.test_management_postgres import postgres_url  # noqa: F401
from tests.management_support import ADMIN_PASSWORD, Api, api, clickhouse_db  # noqa: F401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(api: Api, username: str, password: str) -> tuple[int, Any]:
    return await api.call(
        "POST", "/api/auth/token", {}, json={"username": username, "password": password}
    )


async def user_row(api: Api, admin: dict[str, str], username: str) -> dict[str, Any]:
    status, users = await api.call("GET", "/api/users", admin)
    assert status == 200, users
    return dict(next(u for u in users["items"] if u["username"] == username))


async def test_admin_creates_and_deactivates_a_user_who_then_cannot_log_in(api: Api) -> None:
    """The admin creates bob; bob logs in (last_login recorded and listed) and is refused every
    admin route; deactivated, bob's password gets 403 ACCOUNT_DEACTIVATED and his old token 401;
    reactivated, he logs in again."""
    admin = await api.admin()
    status, bob = await api.call(
        "POST", "/api/users", admin, json={"username": "bob", "password": "bob-password-1"}
    )
    assert status == 201, bob
    assert bob["role"] == "user" and bob["active"] is True and bob["last_login"] is None

    status, token = await login(api, "bob", "bob-password-1")
    assert status == 200, token
    assert token["user"]["last_login"] is not None
    bob_headers = bearer(token["access_token"])
    listed = await user_row(api, admin, "bob")
    assert listed["last_login"] == token["user"]["last_login"] and listed["active"] is True
    status, me = await api.call("GET", "/api/users/me", bob_headers)
    assert status == 200 and me["last_login"] == listed["last_login"]

    for method, path, body in (
        ("GET", "/api/users", None),
        ("POST", "/api/users", {"username": "mallory", "password": "mallory-pass"}),
        ("PATCH", f"/api/users/{bob['id']}", {"role": "admin"}),
        ("DELETE", f"/api/users/{bob['id']}", None),
    ):
        status, answer = await api.call(method, path, bob_headers, json=body)
        assert status == 403 and answer["error"]["code"] == "FORBIDDEN", (method, path, answer)
    assert (await user_row(api, admin, "bob"))["role"] == "user"

    status, changed = await api.call(
        "PATCH", f"/api/users/{bob['id']}", admin, json={"active": False}
    )
    assert status == 200 and changed["active"] is False, changed
    status, answer = await login(api, "bob", "bob-password-1")
    assert status == 403 and answer["error"]["code"] == "ACCOUNT_DEACTIVATED", answer
    status, answer = await login(api, "bob", "wrong-password")
    assert status == 401 and answer["error"]["code"] == "INVALID_CREDENTIALS", answer
    status, answer = await api.call("GET", "/api/users/me", bob_headers)
    assert status == 401 and answer["error"]["code"] == "ACCOUNT_DEACTIVATED", answer
    status, answer = await api.call("GET", "/api/models", bob_headers)
    assert status == 401, answer
    assert (await user_row(api, admin, "bob"))["active"] is False

    status, changed = await api.call(
        "PATCH", f"/api/users/{bob['id']}", admin, json={"active": True}
    )
    assert status == 200 and changed["active"] is True
    status, token = await login(api, "bob", "bob-password-1")
    assert status == 200, token

    status, answer = await api.call("PATCH", "/api/users/not-a-user", admin, json={"active": False})
    assert status == 404, answer
    status, answer = await api.call(
        "PATCH", f"/api/users/{bob['id']}", admin, json={"active": "no"}
    )
    assert status == 400 and answer["error"]["code"] == "INVALID_INPUT", answer


async def test_the_last_active_admin_cannot_be_demoted_deactivated_or_deleted(api: Api) -> None:
    """With one active admin (a second one deactivated), demoting, deactivating or deleting it is
    409 LAST_ADMIN and changes nothing; an admin cannot deactivate themself; once the second admin
    is active again, it may deactivate the first."""
    admin = await api.admin()
    _, me = await api.call("GET", "/api/users/me", admin)
    status, carol = await api.call(
        "POST",
        "/api/users",
        admin,
        json={"username": "carol", "password": "carol-password", "role": "admin"},
    )
    assert status == 201, carol
    status, _ = await api.call("PATCH", f"/api/users/{carol['id']}", admin, json={"active": False})
    assert status == 200

    carol_actor_checks = (
        ("PATCH", {"role": "user"}),
        ("PATCH", {"active": False}),
        ("DELETE", None),
    )
    # Acting as carol is impossible while she is deactivated: check through the logic instead.
    accounts = api.client.server.app[ACCOUNTS]
    actor = Principal(carol["id"], "carol", Role.ADMIN)
    for method, body in carol_actor_checks:
        with pytest.raises(Conflict) as refused:
            if method == "DELETE":
                await accounts.delete(me["id"], actor)
            else:
                await accounts.update(me["id"], UserUpdate.model_validate(body), actor)
        assert refused.value.code == "LAST_ADMIN" and refused.value.status == 409
    status, answer = await api.call("PATCH", f"/api/users/{me['id']}", admin, json={"role": "user"})
    assert status == 409 and answer["error"]["code"] == "LAST_ADMIN", answer
    status, answer = await api.call(
        "PATCH", f"/api/users/{me['id']}", admin, json={"active": False}
    )
    assert status == 400, answer  # not yourself, whatever the count
    status, answer = await api.call("GET", "/api/users/me", admin)
    assert status == 200 and answer["role"] == "admin" and answer["active"] is True

    status, _ = await api.call("PATCH", f"/api/users/{carol['id']}", admin, json={"active": True})
    assert status == 200
    carol_headers = bearer(await api.token("carol", "carol-password"))
    status, answer = await api.call(
        "PATCH", f"/api/users/{me['id']}", carol_headers, json={"active": False}
    )
    assert status == 200 and answer["active"] is False, answer
    status, answer = await login(api, "admin", ADMIN_PASSWORD)
    assert status == 403 and answer["error"]["code"] == "ACCOUNT_DEACTIVATED"
    status, answer = await api.call(
        "PATCH", f"/api/users/{carol['id']}", carol_headers, json={"role": "user"}
    )
    assert status == 409 and answer["error"]["code"] == "LAST_ADMIN", answer


async def test_a_user_changes_their_own_password_behind_the_login_throttle(api: Api) -> None:
    """Right current password: 200 with a fresh token, every older token refused, the new
    password logs in. Wrong current password: 403 WRONG_PASSWORD, counted like a failed login, so
    guessing ends in 429 (also for the right password and for logins) instead of more checks."""
    headers = await api.new_user("dave")
    other_session = bearer(await api.token("dave", "dave-password"))
    path = "/api/users/me/password"

    status, answer = await api.call(
        "POST", path, headers, json={"current_password": "dave-password", "new_password": "short"}
    )
    assert status == 400 and answer["error"]["code"] == "INVALID_INPUT", answer
    status, answer = await api.call(
        "POST",
        path,
        headers,
        json={"current_password": "dave-password", "new_password": "dave-password"},
    )
    assert status == 400, answer
    status, answer = await api.call(
        "POST", path, headers, json={"current_password": "nope", "new_password": "x" * 10}
    )
    assert status == 403 and answer["error"]["code"] == "WRONG_PASSWORD", answer

    status, changed = await api.call(
        "POST",
        path,
        headers,
        json={"current_password": "dave-password", "new_password": "dave-new-password"},
    )
    assert status == 200, changed
    assert changed["user"]["username"] == "dave" and changed["token_type"] == "bearer"
    fresh = bearer(changed["access_token"])
    for old in (headers, other_session):
        status, answer = await api.call("GET", "/api/users/me", old)
        assert status == 401, answer
    status, answer = await api.call("GET", "/api/users/me", fresh)
    assert status == 200 and answer["username"] == "dave"
    status, _ = await login(api, "dave", "dave-password")
    assert status == 401
    status, _ = await login(api, "dave", "dave-new-password")
    assert status == 200

    statuses = []
    for attempt in range(12):
        status, answer = await api.call(
            "POST",
            path,
            fresh,
            json={"current_password": f"guess-{attempt}", "new_password": "x" * 12},
        )
        statuses.append(status)
        if status == 429:
            assert answer["error"]["code"] == "RATE_LIMITED", answer
            assert answer["error"]["details"]["retry_after_s"] >= 1
            break
        assert status == 403 and answer["error"]["code"] == "WRONG_PASSWORD", answer
    assert statuses[-1] == 429 and 1 <= statuses.count(403) <= 5, statuses
    status, _ = await api.call(
        "POST",
        path,
        fresh,
        json={"current_password": "dave-new-password", "new_password": "y" * 12},
    )
    assert status == 429  # locked: not even the right password is checked
    status, _ = await login(api, "dave", "dave-new-password")
    assert status == 429  # one throttle for logins and password changes
    status, answer = await api.call("GET", "/api/users/me", fresh)
    assert status == 200  # the session itself goes on


async def test_deactivation_and_the_last_admin_rule_on_postgresql(
    postgres_url: str,
) -> None:
    """Migration 0003 on PostgreSQL: accounts start active; a deactivated one is refused at login;
    the only active admin cannot be deactivated."""
    engine = create_engine(postgres_url)
    accounts = Accounts(session_factory(engine), TokenIssuer("x" * 40, 60))
    try:
        await migrate(engine)
        root = await accounts.create(
            UserCreate(username="root", password="root-password", role=Role.ADMIN)
        )
        erin = await accounts.create(
            UserCreate(username="erin", password="erin-password", role=Role.USER)
        )
        assert erin.active and erin.last_login is None
        token = await accounts.login("erin", "erin-password")
        assert token.user.last_login is not None
        actor = Principal(root.id, root.username, Role.ADMIN)
        assert not (await accounts.update(erin.id, UserUpdate(active=False), actor)).active
        with pytest.raises(Forbidden) as refused:
            await accounts.login("erin", "erin-password")
        assert refused.value.code == "ACCOUNT_DEACTIVATED"
        other = Principal(erin.id, erin.username, Role.ADMIN)
        with pytest.raises(Conflict) as kept:
            await accounts.update(root.id, UserUpdate(active=False), other)
        assert kept.value.code == "LAST_ADMIN"
    finally:
        accounts.close()
        await engine.dispose()
