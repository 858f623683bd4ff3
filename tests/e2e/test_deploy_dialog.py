"""The deploy dialog in a real browser against the whole stack (issue 11).

The API serves v1 (iris); v2 of the same model was trained on wine. The dialog opens on the version
already serving with its metrics; choosing v2 shows both versions' metrics side by side and the
compatibility diff, and deploying it needs an explicit confirmation (sent as ``force``). Screenshots
go to test-artifacts/screenshots/deploy-dialog/.
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
    require_dashboard_build,
)
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

UI_TIMEOUT_MS = 20_000
SHOTS = SCREENSHOTS / "deploy-dialog"


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def train(base: str, headers: dict[str, str], name: str, dataset: str) -> dict[str, Any]:
    body = {"name": name, "dataset": dataset, "algorithm": "logistic_regression", "params": {}}
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


def test_the_deploy_dialog_shows_metrics_and_the_diff_and_asks_before_forcing(
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
    name = f"deploy-e2e-{uuid.uuid4().hex[:6]}"
    v1 = train(base, headers, name, "iris")
    train(base, headers, name, "wine")
    status, created = http_json(
        "POST", f"{base}/api/export/{v1['model_id']}", {"version": 1}, headers
    )
    assert status == 201, created
    api_id = created["api"]["id"]

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
            expect(tid(page, "api-detail")).to_be_visible()

            # The dialog opens on the version already serving; nothing to deploy yet.
            tid(page, "deploy-button").click()
            dialog = tid(page, "deploy-dialog")
            expect(dialog).to_be_visible()
            select = tid(page, "deploy-version-select")
            expect(select).to_have_value("1")
            expect(tid(page, "deploy-confirm")).to_be_disabled()
            expect(tid(page, "deploy-compare").locator("thead th")).to_have_count(2)

            # Choosing v2: both versions' metrics side by side, and the diff.
            select.select_option("2")
            compare = tid(page, "deploy-compare")
            expect(compare.locator("thead th")).to_have_count(3)
            expect(compare.locator("thead")).to_contain_text("v1")
            expect(compare.locator("thead")).to_contain_text("v2")
            expect(tid(page, "deploy-metric-accuracy").locator("td")).to_have_count(2)
            notice = tid(page, "deploy-compat")
            expect(notice).to_have_attribute("data-compatible", "false")
            diff = tid(page, "deploy-diff")
            expect(diff).to_contain_text("sepal_length_cm")
            expect(diff).to_contain_text("alcohol")
            expect(diff).to_contain_text("setosa")
            confirm = tid(page, "deploy-confirm")
            expect(confirm).to_have_text("Déployer quand même")  # French by default
            expect(confirm).to_be_disabled()
            tid(page, "deploy-force").check()
            expect(confirm).to_be_enabled()
            shots.take("deploy-incompatible", full_page=False)

            confirm.click()
            expect(dialog).to_be_hidden()
            expect(page.get_by_text("Version v2 déployée.")).to_be_visible()
            status, served = http_json("GET", f"{base}/api/exports/{api_id}", None, headers)
            assert status == 200 and served["version_number"] == 2, served
        finally:
            context.close()
