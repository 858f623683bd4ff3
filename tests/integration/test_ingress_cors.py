"""Browsers may call the prediction routes from another origin (the dashboard's "Try it" panel):
preflights are answered before the key, the rate limit and the events, with the headers a browser
needs; the answers carry the allowed origin and the headers a script may read; no credentials,
no unlisted origin echoed."""

from __future__ import annotations

from typing import Any

import aiohttp

from ingress.cors import ALLOW_HEADERS
from tests.prediction_fixtures import IRIS_ROW, PredictionWorld, collect_request_events

DASHBOARD = "http://dashboard.example:8080"
REQUESTED = "content-type,x-api-key,authorization,idempotency-key,traceparent"


def _listed(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(",") if part.strip()}


async def test_preflight_spends_nothing_and_answers_carry_cors_headers(
    world: PredictionWorld, start_ingress: Any, start_worker: Any, topology: Any
) -> None:
    await start_worker()
    ingress = await start_ingress(ingress_cors_origins=[DASHBOARD])
    preflight = {
        "Origin": DASHBOARD,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": REQUESTED,
    }
    async with aiohttp.ClientSession() as http:
        # Many preflights on an API limited to 2 requests a minute, and on the OIP paths.
        paths = ["/api/predict/limited"] * 5 + ["/v2/models/limited/infer", "/v2/health/ready"]
        for path in paths:
            async with http.options(ingress.url + path, headers=preflight) as r:
                assert r.status == 204, (path, r.status)
                assert r.headers["Access-Control-Allow-Origin"] == DASHBOARD
                assert _listed(REQUESTED) <= _listed(r.headers["Access-Control-Allow-Headers"])
                assert {"get", "post"} <= _listed(r.headers["Access-Control-Allow-Methods"])
                assert int(r.headers["Access-Control-Max-Age"]) > 0
                assert r.headers["Vary"] == "Origin"
                assert "Access-Control-Allow-Credentials" not in r.headers
                assert await r.read() == b""
        # An origin not listed is not echoed (nor is anything else granted).
        evil = {**preflight, "Origin": "https://evil.example"}
        async with http.options(ingress.url + "/api/predict/limited", headers=evil) as r:
            assert r.status == 204
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]

        # The actual cross-origin call: the first of its two tokens (preflights spent none).
        headers = {"Origin": DASHBOARD, "X-API-Key": world.keys["limited"]}
        async with http.post(
            ingress.url + "/api/predict/limited", json=IRIS_ROW, headers=headers
        ) as r:
            body = await r.json()
            assert r.status == 200, body
            assert body["prediction"] == "setosa"
            assert r.headers["RateLimit-Limit"] == "2"
            assert r.headers["RateLimit-Remaining"] == "1"
            assert r.headers["Access-Control-Allow-Origin"] == DASHBOARD
            exposed = _listed(r.headers["Access-Control-Expose-Headers"])
            assert {"ratelimit-remaining", "retry-after", "server-timing"} <= exposed
            assert {"x-request-id", "traceparent"} <= exposed
            assert r.headers["Server-Timing"].startswith("ingress;dur=")
            assert "Access-Control-Allow-Credentials" not in r.headers
        # An error answer is readable too (the panel shows its message).
        async with http.post(
            ingress.url + "/api/predict/limited", json=IRIS_ROW, headers={"Origin": DASHBOARD}
        ) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "MISSING_API_KEY"
            assert r.headers["Access-Control-Allow-Origin"] == DASHBOARD
        async with http.post(
            ingress.url + "/api/predict/iris",
            json=IRIS_ROW,
            headers={"Origin": "https://evil.example", "X-API-Key": world.keys["iris"]},
        ) as r:
            assert r.status == 200  # the browser withholds it: no allow-origin
            assert "Access-Control-Allow-Origin" not in r.headers
        # Service routes are not offered to other origins.
        async with http.get(ingress.url + "/metrics", headers={"Origin": DASHBOARD}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers

    # Three requests, three events; the seven preflights none.
    events = await collect_request_events(topology, expected=3)
    assert sorted((e["api_id"], e["status_code"]) for e in events) == [
        ("iris", 200),
        ("limited", 200),
        ("limited", 401),
    ]


async def test_any_origin_by_default_without_credentials(
    world: PredictionWorld, start_ingress: Any
) -> None:
    ingress = await start_ingress()
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": "https://anywhere.example", "Access-Control-Request-Method": "POST"}
        async with http.options(ingress.url + "/api/predict/iris", headers=headers) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert r.headers["Access-Control-Allow-Headers"] == ALLOW_HEADERS
            assert "Vary" not in r.headers
            assert "Access-Control-Allow-Credentials" not in r.headers
        async with http.post(
            ingress.url + "/api/predict/iris",
            json=IRIS_ROW,
            headers={"Origin": "https://anywhere.example", "X-API-Key": "wrong"},
        ) as r:
            assert r.status == 403
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in r.headers
