# ruff: noqa: F811
"""Accounts and models against the real app (real RabbitMQ namespace, real ClickHouse)."""

from __future__ import annotations

from tests.management_support import Api, api, churn_csv, clickhouse_db  # noqa: F401


async def test_login_me_and_admin_only_user_management(api: Api) -> None:
    """The first admin logs in; users see themselves; only admins manage users."""
    admin = await api.admin()
    status, me = await api.call("GET", "/api/users/me", admin)
    assert status == 200 and me["username"] == "admin" and me["role"] == "admin"
    alice = await api.new_user("alice")
    status, body = await api.call("GET", "/api/users", alice)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    status, body = await api.call(
        "POST", "/api/auth/token", {}, json={"username": "alice", "password": "wrong-pass"}
    )
    assert status == 401 and body["error"]["code"] == "INVALID_CREDENTIALS"
    status, body = await api.call("GET", "/api/models", {})
    assert status == 401
    status, body = await api.call("GET", "/api/models", {"Authorization": "Bearer not-a-jwt"})
    assert status == 401

    admin_id = me["id"]
    status, body = await api.call("DELETE", f"/api/users/{admin_id}", admin)
    assert status == 400  # not yourself
    status, body = await api.call("PATCH", f"/api/users/{admin_id}", admin, json={"role": "user"})
    assert status == 409  # never zero admins
    await api.train_builtin(alice, "kept")
    _, users = await api.call("GET", "/api/users", admin)
    alice_id = next(u["id"] for u in users["items"] if u["username"] == "alice")
    status, body = await api.call("DELETE", f"/api/users/{alice_id}", admin)
    assert status == 409 and body["error"]["details"]["models"] == 1
    status, body = await api.call(
        "PATCH", f"/api/users/{alice_id}", admin, json={"password": "short"}
    )
    assert status == 400
    status, body = await api.call(
        "PATCH", f"/api/users/{alice_id}", admin, json={"password": "a-new-password"}
    )
    assert status == 200
    status, body = await api.call("GET", "/api/users/me", alice)
    assert status == 401  # sessions from before the password change end
    assert await api.token("alice", "a-new-password")


async def test_trains_iris_and_a_csv_with_categories(api: Api) -> None:
    """Built-in iris and a CSV with a category column train to versions with metrics and schema."""
    headers = await api.new_user("trainer")
    job = await api.train_builtin(headers, "iris-model", algorithm="random_forest", n_estimators=20)
    assert job["status"] == "succeeded", job
    status, logs = await api.call("GET", f"/api/training-jobs/{job['id']}/logs", headers)
    assert status == 200 and any("estimators" in line for line in logs["lines"])
    status, model = await api.call("GET", f"/api/models/{job['model_id']}", headers)
    version = model["versions"][0]
    # The log says which runtime predictors will use, as the version's details do.
    runtime = {"onnx": "onnxruntime", "sklearn": "scikit-learn"}[version["serving"]["runtime"]]
    assert any(f"served by: {runtime}" in line for line in logs["lines"]), logs["lines"]
    assert model["task"] == "classification" and version["number"] == 1
    assert (
        set(version["metrics"]) == {"accuracy", "f1", "roc_auc"}
        and version["metrics"]["accuracy"] > 0.8
    )
    assert version["classes"] == ["setosa", "versicolor", "virginica"]
    assert [f["name"] for f in version["features"]][:2] == ["sepal_length_cm", "sepal_width_cm"]

    again = await api.train_builtin(headers, "iris-model")
    assert again["version_number"] == 2 and again["model_id"] == job["model_id"]

    job = await api.train_csv(
        headers, "churn", churn_csv(), "churned", algorithm="gradient_boosting"
    )
    assert job["status"] == "succeeded", job
    status, model = await api.call("GET", f"/api/models/{job['model_id']}", headers)
    features = {f["name"]: f for f in model["versions"][0]["features"]}
    assert features["plan"]["type"] == "category" and features["plan"]["categories"] == [
        "basic",
        "plus",
        "pro",
    ]
    assert features["age"]["type"] == "integer" and features["has_support"]["type"] == "boolean"
    assert features["monthly_spend"]["type"] == "number"
    assert (api.settings.model_store / model["versions"][0]["id"] / "model.skops").is_file()


async def test_bad_training_requests_are_clear_400s(api: Api) -> None:
    """Unknown algorithm, wrong task, missing target column: 400 with details, nothing created."""
    headers = await api.new_user("careless")
    status, body = await api.call(
        "POST",
        "/api/models/train",
        headers,
        json={"name": "x", "dataset": "diabetes", "algorithm": "logistic_regression"},
    )
    assert status == 400 and body["error"]["details"]["supported_tasks"] == ["classification"]
    status, body = await api.call(
        "POST",
        "/api/models/train",
        headers,
        json={
            "name": "x",
            "dataset": "iris",
            "algorithm": "random_forest",
            "params": {"n_estimators": "many"},
        },
    )
    assert status == 400 and "n_estimators" in body["error"]["details"]["params"]
    status, body = await api.call(
        "POST",
        "/api/models/train",
        {**headers, "Content-Type": "application/json"},
        data=b"{not json",
    )
    assert status == 400 and body["error"]["code"] == "INVALID_JSON"
    from aiohttp import FormData

    form = FormData()
    form.add_field("file", churn_csv(), filename="d.csv")
    form.add_field("name", "c")
    form.add_field("target", "nope")
    form.add_field("algorithm", "random_forest")
    status, body = await api.call("POST", "/api/models/train", headers, data=form)
    assert status == 400 and "churned" in body["error"]["details"]["columns"]
    status, models = await api.call("GET", "/api/models", headers)
    assert models["items"] == []
