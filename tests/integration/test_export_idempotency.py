# ruff: noqa: F811
"""``POST /api/export/{model_id}`` with an ``Idempotency-Key``: a double submit (one after the other
or at the same moment) creates one API and both answers are the same; the key reused for another
request answers 409; without the key the route behaves as before; bad fields and bad keys change
nothing. The same guarantees on PostgreSQL (the primary key, not a check-then-insert)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from infra.model_store import ModelStore
from management_api.accounts import Accounts
from management_api.catalog import Catalog
from management_api.datasets import load_dataset
from management_api.db import (
    ExportedApi,
    ExportIdempotency,
    create_engine,
    migrate,
    session_factory,
    utcnow,
)
from management_api.exports import Exports
from management_api.fitting import train
from management_api.security import TokenIssuer
from schemas import ApiChanged
from schemas.resources import AlertThresholds, ApiCreate, Role, UserCreate
from tests.integration.test_management_postgres import postgres_url  # noqa: F401
from tests.management_support import Api, api, clickhouse_db  # noqa: F401

FORM = {"name": "churn-scoring", "rate_limit_per_minute": 30, "log_payloads": False}


async def post(
    api: Api, headers: dict[str, str], model_id: str, body: Any, key: str | None
) -> tuple[int, Any, dict[str, str]]:
    sent = dict(headers) if key is None else {**headers, "Idempotency-Key": key}
    r = await api.client.post(f"/api/export/{model_id}", json=body, headers=sent)
    return r.status, await r.json(), dict(r.headers)


async def count_apis(api: Api, headers: dict[str, str], model_id: str) -> int:
    status, listed = await api.call("GET", f"/api/exports?model_id={model_id}", headers)
    assert status == 200, listed
    return len(listed["items"])


async def test_a_double_submit_creates_one_api_and_answers_the_same_twice(api: Api) -> None:
    owner = await api.new_user("idem-owner")
    model_id = (await api.train_builtin(owner, "iris"))["model_id"]

    # One after the other: the second answer is the first one (key included), marked replayed.
    key = str(uuid.uuid4())
    status, first, headers = await post(api, owner, model_id, FORM, key)
    assert status == 201, first
    assert "Idempotent-Replayed" not in headers
    assert first["api"]["name"] == "churn-scoring"
    assert first["api"]["rate_limit_per_minute"] == 30 and first["api"]["log_payloads"] is False
    status, again, headers = await post(api, owner, model_id, FORM, key)
    assert status == 201 and headers.get("Idempotent-Replayed") == "true"
    assert again == first
    assert await count_apis(api, owner, model_id) == 1

    # At the same moment: one API, the same answer to both.
    key2 = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(post(api, owner, model_id, {**FORM, "name": "twin"}, key2) for _ in range(4))
    )
    assert [status for status, _, _ in answers] == [201] * 4, answers
    assert len({body["api"]["id"] for _, body, _ in answers}) == 1
    assert len({body["api_key"] for _, body, _ in answers}) == 1
    assert sum(h.get("Idempotent-Replayed") == "true" for _, _, h in answers) == 3
    assert await count_apis(api, owner, model_id) == 2

    # The same key for another request: 409, nothing created.
    for other in ({**FORM, "rate_limit_per_minute": 31}, {**FORM, "name": "other"}, {}):
        status, error, _ = await post(api, owner, model_id, other, key)
        assert status == 409, error
        assert error["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert error["error"]["details"]["header"] == "Idempotency-Key"
    assert await count_apis(api, owner, model_id) == 2

    # Another user (here an admin, who may export anyone's model) with the same key: its own
    # request, never the owner's answer and key.
    admin = await api.admin()
    status, theirs, headers = await post(api, admin, model_id, FORM, key)
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert theirs["api"]["id"] != first["api"]["id"] and theirs["api_key"] != first["api_key"]
    assert await count_apis(api, owner, model_id) == 3

    # No key: every POST creates an API, as before.
    for _ in range(2):
        status, created, _ = await post(api, owner, model_id, {"name": "unkeyed"}, None)
        assert status == 201, created
    assert await count_apis(api, owner, model_id) == 5

    # Bad keys and bad fields: 400 with the field named, nothing created, the key not burnt.
    fresh = str(uuid.uuid4())
    for bad_key in ("", "x" * 256, "has space", "caf\u00e9"):
        r = await api.client.post(
            f"/api/export/{model_id}",
            json=FORM,
            headers={**owner, "Idempotency-Key": bad_key.encode().decode("latin-1")},
        )
        error = await r.json()
        assert r.status == 400, error
        assert error["error"]["details"]["header"] == "Idempotency-Key"
    for bad in (
        {"rate_limit_per_minute": 0},
        {"rate_limit_per_minute": 1_000_001},
        {"rate_limit_per_minute": "fast"},
        {"name": "   "},
        {"name": "x" * 101},
        {"rate_limit_per_minute": "30"},
        {"log_payloads": "yes"},
        {"log_payloads": 1},
        {"unknown": 1},
    ):
        status, error, _ = await post(api, owner, model_id, {**FORM, **bad}, fresh)
        assert status == 400, (bad, error)
        assert error["error"]["code"] == "INVALID_INPUT"
    assert await count_apis(api, owner, model_id) == 5
    status, created, headers = await post(api, owner, model_id, FORM, fresh)
    assert status == 201 and "Idempotent-Replayed" not in headers

    # The database holds neither the idempotency key nor the API key in clear.
    engine = create_engine(api.settings.database_url)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.scalars(select(ExportIdempotency))).all()
            assert len(rows) == 4  # key (owner), key2, key (admin), fresh
            for row in rows:
                stored = repr([getattr(row, c.key) for c in ExportIdempotency.__table__.columns])
                assert key not in stored and key2 not in stored and fresh not in stored
                assert first["api_key"] not in stored and created["api_key"] not in stored
            # After 24 h a key is forgotten: the same request creates a new API.
            await session.execute(
                update(ExportIdempotency).values(
                    created_at=utcnow() - timedelta(hours=24, seconds=1)
                )
            )
            await session.commit()
        status, later, headers = await post(api, owner, model_id, FORM, key)
        assert status == 201 and "Idempotent-Replayed" not in headers
        assert later["api"]["id"] != first["api"]["id"]
        async with session_factory(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(ExportIdempotency)) == 1
    finally:
        await engine.dispose()
    assert await count_apis(api, owner, model_id) == 7


async def test_concurrent_keyed_exports_create_one_api_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = create_engine(postgres_url)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        accounts = Accounts(sessions, TokenIssuer("x" * 40, 60))
        user = await accounts.create(
            UserCreate(username="pgidem", password="pg-password", role=Role.USER)
        )
        who = await accounts.authenticate(
            (await accounts.login("pgidem", "pg-password")).access_token
        )
        frame, target, _ = load_dataset("iris")
        frame["target"] = target
        trained = train(frame, "target", "logistic_regression", {})
        catalog = Catalog(sessions, ModelStore(tmp_path / "models"))
        model, _ = await catalog.add_version(user.id, "iris", trained, "builtin:iris")
        announced: list[ApiChanged] = []

        async def publish(change: ApiChanged) -> None:
            announced.append(change)

        exports = Exports(sessions, publish, "http://ingress", AlertThresholds())
        body = ApiCreate(name="pg", rate_limit_per_minute=7, log_payloads=False)
        answers = await asyncio.gather(
            *(exports.create_once(who, model.id, body, "same-key") for _ in range(6))
        )
        assert len({created.api.id for created, _ in answers}) == 1
        assert len({created.api_key for created, _ in answers}) == 1
        assert sorted(replayed for _, replayed in answers) == [False] + [True] * 5
        assert len(announced) == 1  # one API created, one change published
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(ExportedApi)) == 1
    finally:
        await engine.dispose()
