# ruff: noqa: F811
"""Issue 11's new routes as an attacker uses them (H9's review): a tiny .skops file claiming
millions of inputs, a burst of parallel inspects from one user, an export replayed with its
``Idempotency-Key`` after the API was deleted or its key regenerated, a deploy with a JSON
``true`` as version. Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import skops.io as sio
from aiohttp import FormData
from sklearn.linear_model import LogisticRegression

from tests.management_support import Api, api, clickhouse_db, make_api  # noqa: F401

INSPECT = "/api/models/upload/inspect"


def file_form(data: bytes) -> FormData:
    form = FormData()
    form.add_field("file", data, filename="model.skops")
    return form


def fitted_classifier() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


async def test_a_model_claiming_millions_of_inputs_is_refused_not_expanded(api: Api) -> None:
    """``n_features_in_`` is a plain int in the file: 9 KB claiming 2,000,000 inputs made the
    API build 2,000,000 placeholder features on its event loop (10 s, 1.6 GB, a 177 MB answer).
    The proposal is bounded: such a file gets a clear 400 naming the count; so do 20,001 names."""
    owner = await api.new_user("wide")
    model = fitted_classifier()
    model.n_features_in_ = 2_000_000
    status, body = await api.call("POST", INSPECT, owner, data=file_form(sio.dumps(model)))
    assert status == 400, str(body)[:300]
    assert body["error"]["details"]["n_features_in"] == 2_000_000
    assert "2,000,000" in body["error"]["message"]

    named = fitted_classifier()
    named.feature_names_in_ = np.array([f"c{i}" for i in range(20_001)], dtype=object)
    named.n_features_in_ = 20_001
    status, body = await api.call("POST", INSPECT, owner, data=file_form(sio.dumps(named)))
    assert status == 400, str(body)[:300]
    assert body["error"]["details"]["n_features_in"] == 20_001

    status, body = await api.call(
        "POST", INSPECT, owner, data=file_form(sio.dumps(fitted_classifier()))
    )
    assert status == 200, body
    assert [f["name"] for f in body["features"]] == ["x0", "x1", "x2"]


def slow_to_open() -> bytes:
    """A valid model whose (compressible) 40 MB coefficient array takes the child a moment."""
    model = fitted_classifier()
    model.coef_ = np.zeros((1, 5_000_000))
    return sio.dumps(model, compression=8)  # zipfile.ZIP_DEFLATED


async def test_parallel_inspects_of_one_user_are_bounded(api: Api) -> None:
    """Every inspect (and upload) opens the file in a child process of up to 1 GiB for up to
    120 s; nothing bounded how many one user could start at once (20 parallel inspects of a
    480 MB array: 20 children, 20 GB). One user's verifications run one at a time: the others
    of a burst get 429 with Retry-After; another user is not refused for it."""
    first, second = await api.new_user("burst"), await api.new_user("bystander")
    data = slow_to_open()

    async def inspect(who: dict[str, str]) -> tuple[int, str | None, object]:
        r = await api.client.post(INSPECT, headers=who, data=file_form(data))
        return r.status, r.headers.get("Retry-After"), await r.json()

    answers = await asyncio.gather(*(inspect(first) for _ in range(6)), inspect(second))
    burst, bystander = answers[:-1], answers[-1]
    statuses = sorted(status for status, _, _ in burst)
    assert 200 in statuses and 429 in statuses, statuses
    assert set(statuses) == {200, 429}, burst
    for status, retry_after, body in burst:
        if status == 429:
            assert retry_after is not None and int(retry_after) >= 1
            assert body["error"]["code"] == "RATE_LIMITED"  # type: ignore[index]
    assert bystander[0] == 200, bystander

    # Once the burst is over the same user inspects again.
    status, _, _ = await inspect(first)
    assert status == 200


async def exported(api: Api, who: dict[str, str], key: str) -> tuple[int, dict[str, object]]:
    job = await api.train_builtin(who, f"m-{uuid.uuid4().hex[:6]}")
    assert job["status"] == "succeeded", job
    headers = {**who, "Idempotency-Key": key}
    body = {"name": "replayed"}
    status, created = await api.call("POST", f"/api/export/{job['model_id']}", headers, json=body)
    assert status == 201, created
    status, again = await api.call("POST", f"/api/export/{job['model_id']}", headers, json=body)
    assert status == 201 and again["api_key"] == created["api_key"], again
    return job["model_id"], created


async def test_a_replay_never_hands_out_a_dead_api_or_key(api: Api) -> None:
    """Replaying an export after its API was deleted answered 201 with that API and its key as if
    it existed; after ``regenerate-key`` it answered 201 with the revoked key. Both are now 409
    IDEMPOTENCY_KEY_REUSED saying what happened, with no key in the answer."""
    owner = await api.new_user("replayer")

    model_id, created = await exported(api, owner, "key-then-delete")
    api_id = created["api"]["id"]  # type: ignore[index]
    status, _ = await api.call("DELETE", f"/api/exports/{api_id}", owner)
    assert status == 204
    headers = {**owner, "Idempotency-Key": "key-then-delete"}
    status, body = await api.call(
        "POST", f"/api/export/{model_id}", headers, json={"name": "replayed"}
    )
    assert status == 409, body
    assert body["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "deleted" in body["error"]["message"]
    assert created["api_key"] not in str(body)

    model_id, created = await exported(api, owner, "key-then-rotate")
    api_id = created["api"]["id"]  # type: ignore[index]
    status, rotated = await api.call("POST", f"/api/exports/{api_id}/regenerate-key", owner)
    assert status == 200, rotated
    headers = {**owner, "Idempotency-Key": "key-then-rotate"}
    status, body = await api.call(
        "POST", f"/api/export/{model_id}", headers, json={"name": "replayed"}
    )
    assert status == 409, body
    assert body["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "regenerated" in body["error"]["message"]
    assert created["api_key"] not in str(body) and rotated["api_key"] not in str(body)


async def test_deploy_takes_a_version_number_not_a_boolean(api: Api) -> None:
    """``{"version": true}`` deployed (and exported) version 1 and ``"1"`` too (lax int); like
    ``force`` and the traffic route's version, it is strict: 400 and nothing changed."""
    owner = await api.new_user("deployer")
    job = await api.train_builtin(owner, "strict-deploy")
    created = await api.export(owner, job["model_id"], name="strict")
    api_id = created["api"]["id"]
    for version in (True, "1", 1.0):
        status, body = await api.call(
            "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": version}
        )
        assert status == 400, (version, body)
    status, body = await api.call(
        "POST", f"/api/exports/{api_id}/deploy", owner, json={"version": 1}
    )
    assert status == 200, body
    for version in (True, "1"):  # nor does an export
        status, body = await api.call(
            "POST", f"/api/export/{job['model_id']}", owner, json={"version": version}
        )
        assert status == 400, (version, body)


async def test_reactivating_an_account_does_not_revive_its_old_sessions(api: Api) -> None:
    """An admin deactivates an account (say its token leaked), then reactivates it: the tokens
    issued before the deactivation worked again. They stay refused; a new login works."""
    member = await api.new_user("revived")
    admin = await api.admin()
    status, me = await api.call("GET", "/api/users/me", member)
    assert status == 200, me
    for active in (False, True):
        status, body = await api.call(
            "PATCH", f"/api/users/{me['id']}", admin, json={"active": active}
        )
        assert status == 200, body
    status, body = await api.call("GET", "/api/users/me", member)
    assert status == 401, body
    assert "deactivated" in body["error"]["message"]
    fresh = {"Authorization": "Bearer " + await api.token("revived", "revived-password")}
    status, body = await api.call("GET", "/api/users/me", fresh)
    assert status == 200, body


async def test_a_change_racing_a_delete_is_404_not_500(api: Api) -> None:
    """Schemathesis (2 workers, as an admin) got a 500 from ``PATCH /api/exports/{id}`` while the
    same API was being deleted: the change committed, then re-reading the deleted row raised.
    Every change (rename, status, deploy) racing a delete answers its result, 404, or 409 (the
    row went away between reading and writing it)."""
    owner = await api.new_user("racer")
    job = await api.train_builtin(owner, "racing")
    changes = [
        ("PATCH", "", {"name": "renamed"}),
        ("PUT", "/status", {"status": "inactive"}),
        ("POST", "/deploy", {"version": 1}),
    ]
    seen: list[int] = []
    for round_ in range(12):
        created = await api.export(owner, job["model_id"], name=f"race-{round_}")
        path = f"/api/exports/{created['api']['id']}"
        method, suffix, body = changes[round_ % len(changes)]
        answers = await asyncio.gather(
            *(api.call(method, path + suffix, owner, json=body) for _ in range(3)),
            api.call("DELETE", path, owner),
            *(api.call(method, path + suffix, owner, json=body) for _ in range(3)),
        )
        seen += [status for status, _ in answers]
        assert all(status in (200, 204, 404, 409) for status, _ in answers), answers
    assert 500 not in seen
