"""Every error status of the prediction route, with its body, and one request event per request."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp

from infra.registry import RegistryResponder
from ingress.app import BATCHER
from schemas import ErrorBody
from tests.prediction_fixtures import (
    HOUSE_ROW,
    IRIS_ROW,
    PredictionWorld,
    build_world,
    collect_request_events,
    wait_until_ready,
)


class Client:
    """Posts to the prediction route and remembers every status, to compare with the events."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.statuses: list[int] = []

    async def post(
        self,
        api_id: str,
        key: str | None,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        all_headers = {"X-API-Key": key} if key else {}
        all_headers.update(headers or {})
        kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": body}
        async with self.http.post(
            f"{self.base}/api/predict/{api_id}", headers=all_headers, **kwargs
        ) as response:
            self.statuses.append(response.status)
            return response.status, dict(response.headers), await response.json()


def assert_error(body: Any, code: str) -> dict[str, Any]:
    parsed = ErrorBody.model_validate(body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert parsed.error.code == code, body
    assert parsed.error.message and "Traceback" not in parsed.error.message
    return parsed.error.details


async def test_each_error_status_has_its_code_and_every_request_yields_one_event(
    world: PredictionWorld, start_ingress: Any, start_worker: Any, topology: Any
) -> None:
    worker = await start_worker()
    ingress = await start_ingress(ingress_request_timeout_s=1.0)
    keys = world.keys
    async with aiohttp.ClientSession() as http:
        c = Client(http, ingress.url)

        status, _, body = await c.post("iris", None, IRIS_ROW)
        assert status == 401 and assert_error(body, "MISSING_API_KEY") == {}

        status, _, body = await c.post(
            "iris", None, IRIS_ROW, headers={"Authorization": f"Bearer {keys['iris']}"}
        )
        assert status == 200 and body["prediction"] == "setosa"

        status, _, body = await c.post("iris", keys["house"], IRIS_ROW)
        assert status == 403
        assert_error(body, "INVALID_API_KEY")

        status, _, body = await c.post("nope", keys["iris"], IRIS_ROW)
        assert status == 404
        assert_error(body, "API_NOT_FOUND")

        status, _, body = await c.post(
            "iris",
            keys["iris"],
            data=b"x" * (1024 * 1024 + 10),
            headers={"Content-Type": "application/json"},
        )
        assert status == 413
        assert assert_error(body, "PAYLOAD_TOO_LARGE")["max_bytes"] == 1024 * 1024

        status, _, body = await c.post(
            "iris", keys["iris"], data=b"sepal_length=1", headers={"Content-Type": "text/plain"}
        )
        assert status == 415
        assert_error(body, "UNSUPPORTED_MEDIA_TYPE")

        status, _, body = await c.post(
            "iris",
            keys["iris"],
            data=b'{"sepal_length": ',
            headers={"Content-Type": "application/json"},
        )
        assert status == 400
        assert_error(body, "INVALID_JSON")

        bad = {"sepal_length": True, "sepal_width": "wide", "petal_length": 1.0, "colour": 3}
        status, _, body = await c.post("iris", keys["iris"], bad)
        assert status == 400
        details = assert_error(body, "INVALID_INPUT")
        assert details["missing"] == ["petal_width"]
        assert details["unexpected"] == ["colour"]
        assert set(details["mistyped"]) == {"sepal_length", "sepal_width"}
        assert "boolean" in details["mistyped"]["sepal_length"]

        status, _, body = await c.post(
            "house", keys["house"], {**HOUSE_ROW, "color": "purple", "rooms": 2.5}
        )
        assert status == 400
        details = assert_error(body, "INVALID_INPUT")
        assert set(details["mistyped"]) == {"color", "rooms"}
        assert details["allowed_categories"] == {"color": ["red", "blue", "green"]}

        status, _, body = await c.post(
            "iris", keys["iris"], {"instances": [IRIS_ROW, {"sepal_length": 1.0}]}
        )
        assert status == 400
        details = assert_error(body, "INVALID_INPUT")
        assert details["instances"][0]["index"] == 1
        assert "petal_width" in details["instances"][0]["missing"]

        status, _, body = await c.post("iris", keys["iris"], {"instances": [IRIS_ROW] * 101})
        assert status == 400
        assert assert_error(body, "INVALID_INPUT")["max_instances"] == 100

        for _ in range(2):
            status, headers, body = await c.post("limited", keys["limited"], IRIS_ROW)
            assert status == 200, body
        assert headers["RateLimit-Limit"] == "2"
        status, headers, body = await c.post("limited", keys["limited"], IRIS_ROW)
        assert status == 429
        assert_error(body, "RATE_LIMITED")
        assert int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Remaining"] == "0"
        assert int(headers["RateLimit-Reset"]) >= 1

        status, _, body = await c.post("house", keys["house"], {**HOUSE_ROW, "color": "green"})
        assert status == 500
        assert "reason" in assert_error(body, "PREDICTION_FAILED")

        status, _, body = await c.post("ghost", keys["ghost"], IRIS_ROW)
        assert status == 503
        assert_error(body, "MODEL_UNAVAILABLE")

        # A paused worker: its only prediction thread is busy past the 1 s deadline.
        blocker = worker._executor.submit(__import__("time").sleep, 2.0)
        status, _, body = await c.post("iris", keys["iris"], IRIS_ROW)
        assert status == 504
        assert_error(body, "TIMEOUT")
        await asyncio.wrap_future(blocker)

        await worker.stop()
        for _ in range(50):
            if not ingress.app[BATCHER].predictors_online:
                break
            await asyncio.sleep(0.1)
        status, _, body = await c.post("iris", keys["iris"], IRIS_ROW)
        assert status == 503
        assert_error(body, "SERVICE_UNAVAILABLE")

        async with http.get(f"{ingress.url}/api/predict/iris") as response:
            assert response.status == 405
            assert_error(await response.json(), "METHOD_NOT_ALLOWED")
        async with http.get(f"{ingress.url}/nowhere") as response:
            assert response.status == 404
            assert_error(await response.json(), "NOT_FOUND")

    events = await collect_request_events(topology, len(c.statuses))
    assert len(events) == len(c.statuses)
    assert len({e["event_id"] for e in events}) == len(events)
    assert Counter(e["status_code"] for e in events) == Counter(c.statuses)
    rejected = [e for e in events if e["status_code"] >= 400]
    assert all(e["error_code"] for e in rejected)
    ok = [e for e in events if e["status_code"] == 200]
    assert all(e["worker_id"] and e["batch_size"] >= 1 and e["rows"] == 1 for e in ok)
    assert all(e["input"] and e["output"] for e in ok)


async def test_answers_503_until_the_first_registry_snapshot_arrives(
    amqp: Any, topology: Any, model_store: Any, start_ingress: Any
) -> None:
    world = build_world(topology, model_store)
    ingress = await start_ingress(wait_ready=False)
    async with aiohttp.ClientSession() as http:
        c = Client(http, ingress.url)
        status, _, body = await c.post("iris", world.keys["iris"], IRIS_ROW)
        assert status == 503
        assert_error(body, "REGISTRY_NOT_READY")
        async with http.get(f"{ingress.url}/ready") as response:
            assert response.status == 503

        responder = RegistryResponder(await amqp.channel(), topology, world.source)
        await responder.start()
        try:
            await wait_until_ready(ingress.url)
            status, _, body = await c.post("iris", "wrong-key", IRIS_ROW)
            assert status == 403
            assert_error(body, "INVALID_API_KEY")
        finally:
            await responder.stop()


async def test_cors_preflight_health_and_metrics(
    world: PredictionWorld, start_ingress: Any
) -> None:
    ingress = await start_ingress(ingress_cors_origins=["https://app.example"])
    async with aiohttp.ClientSession() as http:
        preflight = {
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        }
        async with http.options(f"{ingress.url}/api/predict/iris", headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert "X-API-Key" in r.headers["Access-Control-Allow-Headers"]
        other = {**preflight, "Origin": "https://evil.example"}
        async with http.options(f"{ingress.url}/api/predict/iris", headers=other) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
        async with http.post(
            f"{ingress.url}/api/predict/iris",
            json=IRIS_ROW,
            headers={"Origin": "https://app.example"},
        ) as r:
            assert r.status == 401
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
        async with http.get(f"{ingress.url}/health") as r:
            health = await r.json()
            assert health["status"] == "ok" and health["service"] == "ingress"
            assert health["instance_id"].startswith("ingress-test-")  # its ingress_id
        async with http.get(f"{ingress.url}/metrics") as r:
            text = await r.text()
            assert 'ingress_requests_total{api_id="iris",status="401",version="1"} 1.0' in text
            assert "ingress_event_buffer_depth" in text
            assert "ingress_request_duration_seconds_bucket" in text


async def test_ready_waits_for_a_consuming_predictor_by_default(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    """/ready is 503 while the registry is loaded but no predictor consumes, 200 once one does."""
    ingress = await start_ingress(wait_ready=False, ingress_ready_requires_predictor=True)
    async with aiohttp.ClientSession() as http:
        for _ in range(100):  # the registry snapshot arrives; still no predictor
            async with http.get(f"{ingress.url}/ready") as response:
                body = await response.json()
            if body.get("details", {}).get("registry"):
                break
            await asyncio.sleep(0.05)
        assert response.status == 503
        assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert body["error"]["details"]["predictors_online"] is False
        assert body["error"]["details"]["registry"] is True

        await start_worker()
        await wait_until_ready(ingress.url)
        async with http.get(f"{ingress.url}/ready") as response:
            assert (await response.json())["predictors_online"] is True
