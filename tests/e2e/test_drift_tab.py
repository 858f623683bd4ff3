"""The Drift and Performance tabs in a real browser with the simulator's traffic (issue 15).

An iris API gets traffic from ``modelgate.simulate.run`` drawn from its training profile with one
feature shifted by 2 standard deviations, and feedback for every answer at a 20 % error rate. On
its page the Drift tab lists that feature first (status drift) with its reference-vs-live histogram
and PSI over time; the Performance tab shows the live accuracy the management API computes from
the feedback. Retrain then trains v2 on the same recipe and opens the deploy dialog with v2
preselected. Screenshots go to test-artifacts/screenshots/drift/.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from modelgate import simulate
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
SHOTS = SCREENSHOTS / "drift"
DRIFTED = "petal_length_cm"
REQUESTS = 200


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def wait_job(base: str, headers: dict[str, str], job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
        status, job = http_json("GET", f"{base}/api/training-jobs/{job['id']}", None, headers)
        assert status == 200, job
    assert job["status"] == "succeeded", job
    return dict(job)


def get(base: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    status, body = http_json("GET", base + path, None, headers)
    assert status == 200, body
    return dict(body)


def test_the_drift_tab_shows_the_drifted_feature_first_and_the_live_accuracy(
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
    me = get(base, "/api/users/me", headers)
    body = {
        "name": f"drift-e2e-{uuid.uuid4().hex[:6]}",
        "dataset": "iris",
        "algorithm": "logistic_regression",
        "params": {},
    }
    status, job = http_json("POST", base + "/api/models/train", body, headers)
    assert status == 202, job
    job = wait_job(base, headers, job)
    status, created = http_json(
        "POST", f"{base}/api/export/{job['model_id']}", {"rate_limit_per_minute": 6000}, headers
    )
    assert status == 201, created
    api_id, key = created["api"]["id"], created["api_key"]
    profile = get(base, f"/api/models/{job['model_id']}/versions/1/reference", headers)
    assert DRIFTED in [f["name"] for f in profile["features"]], profile["features"]

    summary = asyncio.run(
        simulate.run(
            simulate.target_of(stack.ingress_url, api_id, key),
            profile,
            rate=50,
            duration_s=30,
            max_requests=REQUESTS,
            drifts=[simulate.Drift(DRIFTED, 2.0)],
            feedback_error_rate=0.2,
            progress=lambda _line: None,
            seed=15,
        )
    )
    answered = summary.statuses.get(200, 0)
    # A busy machine may shed a few (503 OVERLOADED): the figures below count the answered ones.
    assert answered >= REQUESTS * 0.6, summary
    assert summary.feedback_accepted == answered, summary

    drift: dict[str, Any] = {}
    perf: dict[str, Any] = {}

    def stored() -> bool:
        nonlocal drift, perf
        drift = get(base, f"/api/exports/{api_id}/drift?range=1h", headers)
        perf = get(base, f"/api/exports/{api_id}/performance?range=1h", headers)
        return bool(drift["live_rows"] >= answered and perf["matched"] >= answered)

    wait_until("the requests and their feedback in ClickHouse", stored, 60)
    assert drift["features"][0]["name"] == DRIFTED, drift["features"]
    assert drift["features"][0]["status"] == "drift", drift["features"][0]
    (served,) = [v for v in perf["versions"] if v["version"] == 1]
    accuracy = served["accuracy"]
    assert 0.6 < accuracy < 0.95, served  # 20 % of the truths sent were made wrong

    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
        context.set_default_timeout(UI_TIMEOUT_MS)
        # Signed in as the dashboard stores a session (the login page has its own tests).
        context.add_init_script(
            f"localStorage.setItem('modelgate.token', {json.dumps(token['access_token'])});"
            f"localStorage.setItem('modelgate.user', {json.dumps(json.dumps(me))});"
        )
        page = context.new_page()
        shots = Screenshots(page, SHOTS)
        try:
            page.goto(f"{base}/monitoring/{api_id}?tab=drift")
            expect(tid(page, "drift-tab")).to_have_attribute("data-state", "ready")
            press(tid(page, "drift-range-1h"))

            # The drifted feature first, flagged; its histogram and PSI series beside.
            rows = tid(page, "drift-row")
            expect(rows).to_have_count(len(profile["features"]))
            first = rows.first
            expect(first).to_have_attribute("data-feature", DRIFTED)
            expect(first).to_have_attribute("data-status", "drift")
            expect(first).to_contain_text("dérive")
            histogram = tid(page, "drift-histogram")
            expect(histogram).to_have_attribute("data-feature", DRIFTED)
            assert int(histogram.get_attribute("data-bins") or 0) >= 2
            bars = histogram.locator(".recharts-bar-rectangle")
            expect(bars.first).to_be_visible()
            assert bars.count() >= 3  # reference and live bars side by side
            series = tid(page, "drift-psi-series")
            expect(series).to_have_attribute("data-feature", DRIFTED)
            assert int(series.get_attribute("data-busy-points") or 0) >= 1
            expect(tid(page, "drift-prediction")).to_be_visible()
            shots.take("drift-tab", full_page=True)

            # Another feature's details on a click.
            other = rows.nth(1)
            name = other.get_attribute("data-feature")
            other.click()
            expect(histogram).to_have_attribute("data-feature", name or "")

            # The live accuracy from the feedback, next to the test accuracy.
            tid(page, "tab-performance").click()
            press(tid(page, "perf-range-1h"))
            expect(tid(page, "perf-tab")).to_have_attribute("data-state", "ready")
            expect(tid(page, "perf-matched")).to_contain_text(str(perf["matched"]))
            live = tid(page, "perf-accuracy-1")
            expect(live).to_have_attribute("data-value", str(accuracy))
            expect(live).to_contain_text(re.compile(r"^0,\d{3}$"))
            expect(tid(page, "perf-series")).to_be_visible()
            expect(tid(page, "perf-curl")).to_contain_text(f"/api/predict/{api_id}/feedback")
            shots.take("performance-tab", full_page=True)

            # Retrain: v2 on the same recipe, then the deploy dialog with v2 preselected.
            tid(page, "perf-retrain").click()
            tid(page, "retrain-start").click()
            dialog = tid(page, "deploy-dialog")
            expect(dialog).to_be_visible(timeout=120_000)
            expect(tid(page, "deploy-version-select")).to_have_value("2")
            expect(tid(page, "deploy-compat")).to_have_attribute("data-compatible", "true")
            shots.take("retrain-deploy", full_page=False)
        finally:
            context.close()
