"""The model page in a real browser (issue 11): a trained classifier shows its confusion matrix,
per-class scores, feature-importance chart, training log and the APIs serving each version; two
versions compare side by side; a regressor shows its residuals; no version key (hex) is on the
page, versions read v1/v2. Screenshots under test-artifacts/screenshots/model-page/."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.dashboard_helpers import (
    SCREENSHOTS,
    Screenshots,
    chromium_browser,
    http_json,
    require_dashboard_build,
    wait_until,
)
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

UI_TIMEOUT_MS = 20_000
HEX_KEY = re.compile(r"\b[0-9a-f]{32}\b")


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def new_user(stack: Stack) -> tuple[str, str, dict[str, str]]:
    base = stack.management_url
    status, token = http_json(
        "POST",
        base + "/api/auth/token",
        {"username": stack.admin_username, "password": stack.admin_password},
    )
    assert status == 200, token
    admin = {"Authorization": "Bearer " + token["access_token"]}
    username, password = f"page{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    body = {"username": username, "password": password}
    status, created = http_json("POST", base + "/api/users", body, admin)
    assert status == 201, created
    status, token = http_json("POST", base + "/api/auth/token", body)
    assert status == 200, token
    return username, password, {"Authorization": "Bearer " + token["access_token"]}


def train(stack: Stack, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    base = stack.management_url
    status, job = http_json("POST", base + "/api/models/train", body, headers)
    assert status == 202, job

    def done() -> bool:
        nonlocal job
        status, job = http_json("GET", f"{base}/api/training-jobs/{job['id']}", None, headers)
        assert status == 200 and job["status"] not in ("failed", "cancelled"), job
        return bool(job["status"] == "succeeded")

    wait_until(f"{body['name']} to train", done, timeout_s=120)
    return dict(job)


def no_version_key_shown(page: Page, version_keys: list[str]) -> None:
    html = page.content()
    for key in version_keys:
        assert key not in html, f"version key {key} is on the page"
    text = page.locator("body").inner_text()
    assert HEX_KEY.search(text) is None, HEX_KEY.search(text)


def test_model_page_shows_evaluation_apis_log_and_compare(stack: Stack) -> None:
    require_dashboard_build()
    base = stack.management_url
    username, password, headers = new_user(stack)
    name = f"iris-page-{uuid.uuid4().hex[:6]}"
    first = train(
        stack, headers, {"name": name, "dataset": "iris", "algorithm": "logistic_regression"}
    )
    train(
        stack,
        headers,
        {
            "name": name,
            "dataset": "iris",
            "algorithm": "random_forest",
            "params": {"n_estimators": 10},
        },
    )
    regression = train(
        stack,
        headers,
        {"name": f"{name}-reg", "dataset": "diabetes", "algorithm": "linear_regression"},
    )
    model_id = first["model_id"]
    api_name = f"serving-{uuid.uuid4().hex[:6]}"
    status, created = http_json(
        "POST", f"{base}/api/export/{model_id}", {"name": api_name, "version": 1}, headers
    )
    assert status == 201, created
    status, model = http_json("GET", f"{base}/api/models/{model_id}", None, headers)
    assert status == 200, model
    keys = [v["id"] for v in model["versions"]]
    n_test = model["versions"][0]["n_test"]

    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        shots = Screenshots(page, SCREENSHOTS / "model-page")
        try:
            page.goto(base + "/")
            expect(page).to_have_url(re.compile(r"/login"))
            tid(page, "login-username").fill(username)
            tid(page, "login-password").fill(password)
            tid(page, "login-submit").click()
            expect(tid(page, "models-page")).to_be_visible()
            expect(tid(page, "model-row")).to_have_count(2)
            no_version_key_shown(page, keys)

            # Version 1: confusion matrix (3 x 3 iris classes, summing to the test rows),
            # per-class scores, importance bars (4 features), the API serving it, its log.
            page.goto(f"{base}/models/{model_id}?version=1")
            matrix = tid(page, "confusion-matrix")
            expect(matrix).to_be_visible()
            cells = tid(page, "confusion-cell")
            expect(cells).to_have_count(9)
            assert sum(int(c) for c in cells.all_inner_texts()) == n_test
            expect(tid(page, "per-class")).to_contain_text("versicolor")
            chart = tid(page, "importance-chart")
            expect(chart.locator(".recharts-bar-rectangle")).to_have_count(4)
            expect(chart).to_contain_text("petal")
            apis = tid(page, "version-apis")
            expect(apis).to_contain_text("v1")
            link = apis.get_by_role("link", name=api_name)
            expect(link).to_have_attribute("href", f"/monitoring/{created['api']['id']}")
            expect(tid(page, "model-training-log-lines")).to_contain_text("permutation importance")
            # Compiled inference (issue 13): how predictors run it, checked on the held-out rows.
            expect(tid(page, "version-runtime")).to_have_attribute("data-runtime", "onnx")
            expect(tid(page, "version-serving")).to_contain_text("held-out split")
            expect(tid(page, "compare-table")).to_contain_text("random_forest")
            expect(tid(page, "compare-table")).to_contain_text("n_estimators")
            no_version_key_shown(page, keys)
            shots.take("classifier-v1")

            # Version 2 is served by no API; the compare view shows v1 and v2 side by side.
            tid(page, "version-select").select_option("2")
            expect(page).to_have_url(re.compile(r"version=2"))
            expect(tid(page, "version-apis")).to_contain_text("v2")
            expect(tid(page, "version-api")).to_have_count(0)
            header = tid(page, "compare-table").locator("thead")
            expect(header).to_contain_text("v1")
            expect(header).to_contain_text("v2")
            no_version_key_shown(page, keys)
            shots.take("classifier-v2-compare")

            # A regressor: residual histogram and scatter, importance of its 10 features.
            page.goto(f"{base}/models/{regression['model_id']}")
            residuals = tid(page, "residuals")
            expect(residuals).to_be_visible()
            expect(residuals.locator(".recharts-bar-rectangle").first).to_be_visible()
            expect(residuals.locator(".recharts-scatter-symbol").first).to_be_visible()
            expect(tid(page, "confusion-matrix")).to_have_count(0)
            expect(tid(page, "importance-chart").locator(".recharts-bar-rectangle")).to_have_count(
                10
            )
            shots.take("regressor")
        finally:
            context.close()
