"""The metadata layer (migrations, accounts, models, exports) on a real PostgreSQL, in a fresh
database per run (MODELGATE_TEST_POSTGRES_URL, default the local server's ``test`` database)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from infra.model_store import ModelStore
from management_api.accounts import Accounts
from management_api.catalog import Catalog
from management_api.datasets import load_dataset
from management_api.db import create_engine, migrate, session_factory
from management_api.exports import ApiFilter, Exports
from management_api.fitting import train
from management_api.security import TokenIssuer
from schemas import ApiChanged
from schemas.resources import AlertThresholds, ApiCreate, ApiUpdate, Role, UserCreate

POSTGRES_HOWTO = (
    "PostgreSQL is needed by this test and none could be reached.\n"
    "  - set MODELGATE_TEST_POSTGRES_URL=postgresql+asyncpg://user@host:5432/db, or\n"
    "  - start the local server (127.0.0.1:5432, trust auth, database `test`)."
)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    base = make_url(
        os.environ.get(
            "MODELGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    )
    name = f"mg_test_{uuid.uuid4().hex[:10]}"
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"cannot connect to PostgreSQL at {dsn}: {exc}\n{POSTGRES_HOWTO}")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_metadata_layer_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    engine = create_engine(postgres_url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent at every start
        sessions = session_factory(engine)
        accounts = Accounts(sessions, TokenIssuer("x" * 40, 60))
        generated = await accounts.ensure_admin("admin", None)
        assert generated and await accounts.ensure_admin("admin", None) is None
        token = await accounts.login("admin", generated)
        assert token.user.role == Role.ADMIN
        user = await accounts.create(
            UserCreate(username="pguser", password="pg-password", role=Role.USER)
        )
        who = await accounts.authenticate(
            (await accounts.login("pguser", "pg-password")).access_token
        )
        assert who.user_id == user.id

        catalog = Catalog(sessions, ModelStore(tmp_path / "models"))
        frame, target, _ = load_dataset("iris")
        frame["target"] = target
        trained = train(frame, "target", "logistic_regression", {})
        model, v1 = await catalog.add_version(user.id, "iris", trained, "builtin:iris")
        _, v2 = await catalog.add_version(user.id, "iris", trained, "builtin:iris")
        assert (v1.number, v2.number) == (1, 2)

        changes: list[ApiChanged] = []

        async def publish(change: ApiChanged) -> None:
            changes.append(change)

        exports = Exports(sessions, publish, "http://ingress", AlertThresholds())
        created = await exports.create(who, model.id, ApiCreate(version=1))
        await exports.update(who, created.api.id, ApiUpdate(rate_limit_per_minute=7))
        await exports.deploy(who, created.api.id, 2)
        [record] = await exports.records()
        assert record.version_key == v2.id and record.rate_limit_per_minute == 7
        assert [c.kind for c in changes] == ["created", "updated", "deployed"]
        assert [a.name for a in await exports.search(who, ApiFilter(q="IRIS"))] == ["iris"]
    finally:
        await engine.dispose()
