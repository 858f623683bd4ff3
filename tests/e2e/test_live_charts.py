"""Recent ranges and live charts in a real browser against the whole stack (issue 12).

An API gets requests through ingress in two bursts ten seconds apart, after its key was rotated and
its version deployed again. On its page the 15-minute range shows the requests in several 10-second
points with the changes as markers; in Live mode new requests appear without a reload; the
monitoring overview shows the same trend across the APIs. Screenshots go to
test-artifacts/screenshots/live/.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.dashboard_helpers import (
    SCREENSHOTS,
    Screenshots,
    chromium_browser,
    http_json,
    press,
    require_dashboard_build,
    wait_until,
)
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

UI_TIMEOUT_MS = 20_000
SHOTS = SCREENSHOTS / "live"


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def train(base: str, headers: dict[str, str], name: str) -> dict[str, Any]:
    body = {"name": name, "dataset": "iris", "algorithm": "logistic_regression", "params": {}}
    status, job = http_json("POST", base + "/api/models/train", body, headers)
    assert status == 202, job
    deadline = time.monotonic() + 180
    while job["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
        status, job = http_json("GET", f"{base}/api/training-jobs/{job['id']}", None, headers)
        assert status == 200, job
    assert job["status"] == "succeeded", job
    return dict(job)


def burst(url: str, features: dict[str, Any], key: str, count: int) -> None:
    for _ in range(count):
        status, body = http_json("POST", url, features, {"X-API-Key": key})
        assert status == 200, body


def series(base: str, api_id: str, headers: dict[str, str]) -> dict[str, Any]:
    url = f"{base}/api/monitoring/apis/{api_id}/timeseries?range=15m"
    status, body = http_json("GET", url, None, headers)
    assert status == 200, body
    return dict(body)


def test_the_15_minute_range_shows_recent_requests_in_several_points_with_markers(
    stack: Stack,
) -> None:
    require_dashboard_build()
    base = stack.management_url
    status, token = http_json(
        "POST",
        base + "/api/auth/token",
        {"username": stack.admin_username, "password": stack.admin_password},
    )
    assert status == 200, token
    headers = {"Authorization": "Bearer " + token["access_token"]}
    job = train(base, headers, f"live-e2e-{uuid.uuid4().hex[:6]}")
    status, created = http_json("POST", f"{base}/api/export/{job['model_id']}", {}, headers)
    assert status == 201, created
    api_id, url = created["api"]["id"], created["api_url"]
    features = created["example_request"]
    status, rotated = http_json("POST", f"{base}/api/exports/{api_id}/regenerate-key", {}, headers)
    assert status == 200, rotated
    key = rotated["api_key"]
    status, deployed = http_json(
        "POST", f"{base}/api/exports/{api_id}/deploy", {"version": 1}, headers
    )
    assert status == 200, deployed

    # Ingress takes the new key once the rotation reached it.
    wait_until(
        "ingress to accept the rotated key",
        lambda: http_json("POST", url, features, {"X-API-Key": key})[0] == 200,
        30,
    )
    burst(url, features, key, 5)
    time.sleep(10.3 - time.time() % 10)  # into the next 10-second bucket (UTC-aligned)
    burst(url, features, key, 6)
    wait_until(
        "the requests in ClickHouse",
        lambda: sum(p["requests"] for p in series(base, api_id, headers)["points"]) >= 12,
        60,
    )
    stored = series(base, api_id, headers)
    assert len([p for p in stored["points"] if p["requests"]]) >= 2, stored["points"]
    assert [m["kind"] for m in stored["markers"]] == ["created", "key_rotated", "deploy"]

    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        shots = Screenshots(page, SHOTS)
        try:
            page.goto(base + "/")
            expect(page).to_have_url(re.compile(r"/login"))
            tid(page, "login-username").fill(stack.admin_username)
            tid(page, "login-password").fill(stack.admin_password)
            tid(page, "login-submit").click()
            expect(tid(page, "models-page")).to_be_visible()
            page.goto(f"{base}/monitoring/{api_id}")
            expect(tid(page, "stat-cards")).to_be_visible()
            press(tid(page, "range-15m"))
            rate = tid(page, "chart-rate")
            expect(rate).to_have_attribute("data-points", "90")
            expect(rate).to_have_attribute("data-markers", "3")
            busy = int(rate.get_attribute("data-busy-points") or 0)
            assert busy >= 2, busy  # several points, not one bar at the right edge
            requests = int(rate.get_attribute("data-requests") or 0)
            assert requests >= 12, requests
            expect(rate.locator(".recharts-reference-line")).to_have_count(3)
            expect(tid(page, "chart-volume")).to_have_attribute("data-markers", "3")
            markers = tid(page, "chart-markers")
            expect(markers).to_contain_text("Clé renouvelée")
            expect(markers).to_contain_text("Version v1 déployée")
            expect(markers).to_contain_text(f"par {stack.admin_username}")
            shots.take("api-15m", full_page=True)

            # Live: new requests show up without a reload.
            tid(page, "range-live").check()
            expect(tid(page, "live-indicator")).to_be_visible()
            burst(url, features, key, 3)
            expect(rate).to_have_attribute("data-requests", str(requests + 3), timeout=30_000)

            # The overview's trend over all the APIs, in the same ranges.
            page.goto(f"{base}/monitoring")
            trends = tid(page, "overview-trends")
            expect(trends).to_be_visible()
            press(tid(page, "trends-range-15m"))
            overall = tid(page, "chart-trends-rate")
            expect(overall).to_have_attribute("data-points", "90")
            assert int(overall.get_attribute("data-requests") or 0) >= requests + 3
            assert int(overall.get_attribute("data-busy-points") or 0) >= 2
            trends.scroll_into_view_if_needed()
            shots.take("overview-trends", full_page=True)
        finally:
            context.close()
