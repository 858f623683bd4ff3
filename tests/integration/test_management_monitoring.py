# ruff: noqa: F811
"""Monitoring routes over rows inserted into a real ClickHouse (metrics schema migrated)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from infra.clickhouse import create_async_client
from tests.management_support import Api, api, clickhouse_db  # noqa: F401

COLUMNS = [
    "event_id",
    "batch_id",
    "ts",
    "api_id",
    "model_version",
    "status_code",
    "error_code",
    "total_ms",
    "inference_ms",
    "cpu_ms",
    "worker_id",
    "worker_rss_mb",
    "prediction",
    "input",
    "output",
]


async def insert_events(
    api: Api, api_id: str, version_id: str, latencies: list[float], errors: int
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for i, latency in enumerate(latencies):
        failed = i < errors
        rows.append(
            [
                uuid.uuid4().hex,
                "b1",
                now - timedelta(seconds=i),
                api_id,
                version_id,
                500 if failed else 200,
                "PREDICTION_FAILED" if failed else "",
                latency,
                latency / 2,
                0.5,
                "predictor-1",
                180.0,
                "" if failed else "setosa",
                '{"x": 1}',
                '{"prediction": "setosa"}',
            ]
        )
    client = await create_async_client(
        api.settings.clickhouse_url, api.settings.clickhouse_database
    )
    try:
        await client.insert("request_events", rows, column_names=COLUMNS)
    finally:
        await client.close()


async def test_monitoring_routes_show_inserted_requests_and_alerts(api: Api) -> None:
    owner = await api.new_user("watcher")
    job = await api.train_builtin(owner, "iris")
    busy = await api.export(
        owner, job["model_id"], name="busy", alert_thresholds={"p95_ms": 50, "error_rate": 0.5}
    )
    quiet = await api.export(owner, job["model_id"], name="quiet")
    api_id, version_id = busy["api"]["id"], busy["api"]["model_version_id"]
    latencies = [float(ms) for ms in range(1, 101)]
    await insert_events(api, api_id, version_id, latencies, errors=10)

    status, stats = await api.call("GET", f"/api/monitoring/apis/{api_id}/stats?range=24h", owner)
    assert status == 200, stats
    assert stats["total_requests"] == 100 and stats["requests_24h"] == 100
    assert stats["errors_5xx"] == 10 and abs(stats["success_rate"] - 0.9) < 1e-9
    assert 45 <= stats["p50_ms"] <= 56 and 90 <= stats["p95_ms"] <= 100
    assert sum(b["count"] for b in stats["histogram"]) == 100
    assert stats["slowest"][0]["total_ms"] == 100.0

    status, series = await api.call(
        "GET", f"/api/monitoring/apis/{api_id}/timeseries?range=24h&bucket=hour", owner
    )
    assert status == 200 and sum(p["requests"] for p in series["points"]) == 100
    assert len(series["points"]) >= 24

    status, page = await api.call(
        "GET", f"/api/monitoring/apis/{api_id}/requests?page=1&page_size=20&status=5xx", owner
    )
    assert status == 200 and page["total"] == 10 and len(page["items"]) == 10
    assert all(item["status_code"] == 500 for item in page["items"])
    status, page = await api.call(
        "GET", f"/api/monitoring/apis/{api_id}/requests?page_size=5000", owner
    )
    assert status == 400

    status, resources = await api.call(
        "GET", f"/api/monitoring/apis/{api_id}/resources?range=24h", owner
    )
    # No predictor sampled the model: it takes no memory (not the events' worker RSS, issue 12).
    assert status == 200 and resources["peak_memory_mb"] == 0.0 and resources["cpu"]

    status, alerts = await api.call("GET", f"/api/monitoring/apis/{api_id}/alerts", owner)
    assert status == 200
    by_metric = {a["metric"]: a for a in alerts["items"]}
    assert set(by_metric) == {"p95_ms"} and by_metric["p95_ms"]["severity"] == "critical"
    status, alerts = await api.call(
        "GET", f"/api/monitoring/apis/{quiet['api']['id']}/alerts", owner
    )
    assert status == 200 and alerts["items"] == []

    status, listing = await api.call("GET", "/api/monitoring/apis?sort=requests&order=desc", owner)
    assert status == 200 and [i["name"] for i in listing["items"]] == ["busy", "quiet"]
    assert listing["items"][0]["stats"]["total_requests"] == 100
    assert listing["items"][1]["stats"]["total_requests"] == 0
    status, listing = await api.call("GET", "/api/exports?sort=last_used&order=asc", owner)
    assert [i["name"] for i in listing["items"]] == ["quiet", "busy"]

    status, overview = await api.call("GET", "/api/monitoring/overview", owner)
    assert status == 200 and overview["total_apis"] == 2 and overview["total_requests"] == 100


async def test_without_clickhouse_monitoring_says_503_and_exports_still_work(
    tmp_path, rabbitmq_url: str, namespace: str, amqp
) -> None:
    """A monitoring outage never blocks managing APIs: lists lack stats, routes say 503."""
    from aiohttp.test_utils import TestClient, TestServer

    from management_api.app import create_app
    from tests.management_support import management_settings
    from tests.services import free_port

    settings = management_settings(
        tmp_path,
        namespace=namespace,
        rabbitmq_url=rabbitmq_url,
        clickhouse_url=f"http://default:@127.0.0.1:{free_port()}/",
        management_monitoring_timeout_s=3,
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        down = Api(client, settings)
        owner = await down.new_user("offline")
        job = await down.train_builtin(owner, "iris")
        created = await down.export(owner, job["model_id"])
        status, listing = await down.call("GET", "/api/exports", owner)
        assert status == 200 and listing["items"][0]["stats"] is None
        status, body = await down.call(
            "GET", f"/api/monitoring/apis/{created['api']['id']}/stats", owner
        )
        assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "Traceback" not in str(body)
    finally:
        await client.close()
