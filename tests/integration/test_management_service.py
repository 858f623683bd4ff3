# ruff: noqa: F811
"""What the service serves besides JSON resources: the dashboard (SPA fallback, cached assets),
the offline docs page, the OpenAPI document, health, uploads, and errors as JSON bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io as sio
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sklearn.linear_model import LogisticRegression

from management_api.app import create_app
from tests.management_support import Api, api, clickhouse_db, management_settings  # noqa: F401


class NotAModel:
    """A user-defined type: skops must refuse to load it from an upload."""

    def predict(self, rows: Any) -> Any:
        return rows


async def test_dashboard_spa_fallback_assets_docs_and_json_errors(
    tmp_path: Path, rabbitmq_url: str, namespace: str, amqp: Any
) -> None:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<html>dashboard</html>")
    (static / "assets" / "app-1a2b.js").write_text("console.log(1)")
    settings = management_settings(
        tmp_path,
        namespace=namespace,
        rabbitmq_url=rabbitmq_url,
        management_static_dir=static,
        management_max_upload_mb=1,
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        for path in ("/", "/monitoring/abc", "/models"):
            r = await client.get(path)
            assert r.status == 200 and "dashboard" in await r.text(), path
            assert r.headers["Cache-Control"] == "no-cache"
        r = await client.get("/assets/app-1a2b.js")
        assert r.status == 200 and "immutable" in r.headers["Cache-Control"]
        r = await client.get("/assets/missing.js")
        assert r.status == 404
        r = await client.get("/../../etc/passwd")
        assert "root:" not in await r.text()
        r = await client.get("/api/nothing-here")
        assert r.status == 404 and (await r.json())["error"]["code"] == "NOT_FOUND"
        r = await client.delete("/api/models")
        assert r.status == 405 and (await r.json())["error"]["code"] == "METHOD_NOT_ALLOWED"

        r = await client.post(
            "/api/auth/token",
            data=b"x" * (1024 * 1024 + 10),
            headers={"Content-Type": "application/json"},
        )
        assert r.status == 413 and (await r.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"

        r = await client.get("/docs")
        page = await r.text()
        assert r.status == 200 and "/openapi.json" in page
        assert "https://" not in page and "http://" not in page  # nothing fetched from a CDN
        r = await client.get("/openapi.json")
        document = await r.json()
        assert "/api/exports/{id}/docs" in document["paths"]
        r = await client.get("/health")
        health = await r.json()
        assert r.status == 200 and health == {
            "status": "ok",
            "database": True,
            "broker": True,
            "service": "management-api",
            "instance_id": health["instance_id"],
        }
        assert health["instance_id"].startswith("management-api-")
    finally:
        await client.close()

    settings = management_settings(
        tmp_path,
        namespace=namespace,
        rabbitmq_url=rabbitmq_url,
        management_static_dir=tmp_path / "none",
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        r = await client.get("/")
        assert r.status == 200 and "make run" in await r.text()
    finally:
        await client.close()


async def test_upload_accepts_sklearn_skops_and_refuses_untrusted_types(
    api: Api, tmp_path: Path
) -> None:
    owner = await api.new_user("uploader")
    model = LogisticRegression().fit(
        [[0.0, 1.0], [1.0, 0.0], [0.5, 0.9], [0.9, 0.1]], ["a", "b", "a", "b"]
    )
    good, bad = tmp_path / "good.skops", tmp_path / "bad.skops"
    sio.dump(model, good)
    sio.dump(NotAModel(), bad)
    features = '[{"name": "x", "type": "number"}, {"name": "y", "type": "number"}]'

    def form(path: Path, **extra: str) -> FormData:
        data = FormData()
        data.add_field("file", path.read_bytes(), filename=path.name)
        for key, value in {
            "name": "uploaded",
            "task": "classification",
            "features": features,
            "classes": '["a", "b"]',
            **extra,
        }.items():
            data.add_field(key, value)
        return data

    status, body = await api.call("POST", "/api/models/upload", owner, data=form(bad))
    assert status == 400 and any(
        "NotAModel" in t for t in body["error"]["details"]["untrusted_types"]
    )
    status, body = await api.call(
        "POST", "/api/models/upload", owner, data=form(good, features="not json")
    )
    assert status == 400 and body["error"]["details"]["field"] == "features"
    status, models = await api.call("GET", "/api/models", owner)
    assert models["items"] == []

    status, body = await api.call("POST", "/api/models/upload", owner, data=form(good))
    assert status == 201, body
    assert body["versions"][0]["source"] == "upload" and body["versions"][0]["classes"] == [
        "a",
        "b",
    ]
    created = await api.export(owner, body["id"])
    status, docs = await api.call("GET", f"/api/exports/{created['api']['id']}/docs", owner)
    assert status == 200 and docs["example_request"] == {"x": 0.0, "y": 0.0}


async def test_bodies_are_validated_before_anything_changes(api: Api) -> None:
    owner = await api.new_user("validator")
    job = await api.train_builtin(owner, "iris")
    status, body = await api.call(
        "POST",
        f"/api/export/{job['model_id']}",
        owner,
        json={"rate_limit_per_minute": 0, "colour": "red"},
    )
    assert status == 400
    fields = {e["field"] for e in body["error"]["details"]["errors"]}
    assert fields == {"rate_limit_per_minute", "colour"}
    status, listing = await api.call("GET", "/api/exports", owner)
    assert listing["items"] == []
