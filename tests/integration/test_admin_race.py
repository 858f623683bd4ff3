"""Account integrity under concurrency, on SQLite and on a real PostgreSQL: "at least one admin"
holds when admins demote or delete each other at the same moment, and usernames are unique
ignoring case."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from management_api.accounts import Accounts, Principal
from management_api.db import User, create_engine, migrate, session_factory
from management_api.errors import Conflict, ServiceError
from management_api.security import PasswordHashing, TokenIssuer, hash_password
from schemas.resources import Role, UserCreate, UserUpdate
from tests.integration.test_management_postgres import postgres_url  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROUNDS = 12
PASSWORD_HASH = hash_password("long-enough-pw")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh metadata DB of each backend (PostgreSQL: a new database on the local server)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def accounts(database_url: str) -> AsyncIterator[Accounts]:
    """Accounts on the migrated metadata DB."""
    engine = create_engine(database_url)
    await migrate(engine)
    accounts = Accounts(session_factory(engine), TokenIssuer("x" * 40, 60), PasswordHashing(2))
    try:
        yield accounts
    finally:
        accounts.close()
        await engine.dispose()


async def admin_count(accounts: Accounts) -> int:
    async with accounts._sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(User).where(User.role == Role.ADMIN)
            )
            or 0
        )


async def two_admins(accounts: Accounts, round_: int) -> tuple[Principal, Principal]:
    """Two new admins, inserted directly (hashing is not what these tests are about)."""
    users = [
        User(username=f"admin{round_}{c}", password_hash=PASSWORD_HASH, role=Role.ADMIN.value)
        for c in "ab"
    ]
    async with accounts._sessions() as session:
        session.add_all(users)
        await session.commit()
    a, b = (Principal(u.id, u.username, Role.ADMIN) for u in users)
    return a, b


async def outcomes(*calls: object) -> list[str]:
    results = await asyncio.gather(*calls, return_exceptions=True)  # type: ignore[call-overload]
    names = []
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, ServiceError):
            raise result
        names.append(type(result).__name__ if isinstance(result, ServiceError) else "ok")
    return names


async def test_two_admins_demoting_each_other_at_once_always_leave_one_admin(
    accounts: Accounts,
) -> None:
    """Round after round, two admins (the only two) demote each other concurrently: exactly one
    demotion wins, the other answers 409, and one admin is left."""
    for round_ in range(ROUNDS):
        a, b = await two_admins(accounts, round_)
        names = await outcomes(
            accounts.update(b.user_id, UserUpdate(role=Role.USER), a),
            accounts.update(a.user_id, UserUpdate(role=Role.USER), b),
        )
        assert sorted(names) == ["Conflict", "ok"], names
        assert await admin_count(accounts) == 1
        # Retire the survivor (a was demoted if the second call won) so the next round starts
        # from two admins again.
        survivor = b if names[1] == "ok" else a
        async with accounts._sessions() as session:
            await session.execute(
                User.__table__.update()
                .where(User.id == survivor.user_id)
                .values(role=Role.USER.value)
            )
            await session.commit()


async def test_two_admins_deleting_each_other_at_once_always_leave_one_admin(
    accounts: Accounts,
) -> None:
    """Concurrent deletions of the only two admins, and a deletion racing a demotion: one admin
    always remains."""
    for round_ in range(ROUNDS):
        a, b = await two_admins(accounts, round_)
        if round_ % 2:
            calls = (accounts.delete(b.user_id, a), accounts.delete(a.user_id, b))
        else:
            calls = (
                accounts.delete(b.user_id, a),
                accounts.update(a.user_id, UserUpdate(role=Role.USER), b),
            )
        names = await outcomes(*calls)
        assert sorted(names) == ["Conflict", "ok"], names
        assert await admin_count(accounts) == 1
        async with accounts._sessions() as session:
            await session.execute(
                User.__table__.update().where(User.role == Role.ADMIN.value).values(role="user")
            )
            await session.commit()


async def test_the_last_admin_cannot_be_demoted_or_deleted(accounts: Accounts) -> None:
    """With one admin, demoting or deleting it is a 409 and changes nothing."""
    only = await accounts.create(
        UserCreate(username="root", password="long-enough-pw", role=Role.ADMIN)
    )
    other = await accounts.create(
        UserCreate(username="helper", password="long-enough-pw", role=Role.USER)
    )
    actor = Principal(other.id, other.username, Role.ADMIN)
    with pytest.raises(Conflict):
        await accounts.update(only.id, UserUpdate(role=Role.USER), actor)
    with pytest.raises(Conflict):
        await accounts.delete(only.id, actor)
    assert (await accounts.get(only.id)).role == Role.ADMIN


async def test_usernames_are_unique_ignoring_case_and_login_ignores_case(
    accounts: Accounts,
) -> None:
    """`Alice` cannot be created when `alice` exists (nor by two concurrent creations), and
    `ALICE` logs in as `alice`."""
    await accounts.create(UserCreate(username="alice", password="alice-password", role=Role.USER))
    with pytest.raises(Conflict):
        await accounts.create(
            UserCreate(username="Alice", password="other-password", role=Role.USER)
        )
    names = await outcomes(
        accounts.create(UserCreate(username="Bob", password="bob-password", role=Role.USER)),
        accounts.create(UserCreate(username="bOB", password="bob-password", role=Role.USER)),
    )
    assert sorted(names) == ["Conflict", "ok"], names
    token = await accounts.login("ALICE", "alice-password")
    assert token.user.username == "alice"
    usernames = sorted(u.username.lower() for u in await accounts.list_users())
    assert usernames == ["alice", "bob"]
