"""The dashboard in a real browser against the whole stack (issue 6).

One journey, as a user makes it: log in, train a model on iris, export it, read the key from the
modal, call the API with it over HTTP, see the requests on the monitoring pages, deactivate the API
(it then answers 403) and delete it, both through their confirmations. Every page is saved as a
screenshot at desktop and phone width under test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.dashboard_helpers import (
    REPO,
    SCREENSHOTS,
    Screenshots,
    chromium_browser,
    http_json,
    require_dashboard_build,
    wait_until,
)
from tests.stack import Stack

pytestmark = pytest.mark.timeout(420)

UI_TIMEOUT_MS = 20_000
TRAINING_TIMEOUT_MS = 180_000


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def call(api_url: str, features: dict[str, Any], api_key: str) -> int:
    return http_json("POST", api_url, features, {"X-API-Key": api_key})[0]


def log_in(page: Page, base: str, username: str, password: str, shots: Screenshots) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(tid(page, "login-submit")).to_have_text("Se connecter")  # French by default
    shots.take("login")
    tid(page, "login-username").fill(username)
    tid(page, "login-password").fill("not-the-password")
    tid(page, "login-submit").click()
    expect(tid(page, "login-error")).to_be_visible()
    tid(page, "login-password").fill(password)
    tid(page, "login-submit").click()
    expect(tid(page, "models-page")).to_be_visible()


def train_iris(page: Page, model_name: str, shots: Screenshots) -> None:
    shots.take("models")
    tid(page, "new-model-button").click()
    expect(tid(page, "training-wizard")).to_be_visible()
    tid(page, "wizard-name").fill(model_name)
    tid(page, "wizard-source-builtin").check()
    tid(page, "wizard-dataset").select_option("iris")
    shots.take("training-wizard")
    tid(page, "wizard-next").click()
    tid(page, "wizard-algorithm").select_option("logistic_regression")
    expect(tid(page, "param-max_iter")).to_be_visible()
    tid(page, "wizard-train").click()
    expect(tid(page, "training-log")).to_be_visible()
    expect(tid(page, "training-status")).to_have_attribute(
        "data-status", "succeeded", timeout=TRAINING_TIMEOUT_MS
    )
    expect(tid(page, "training-log")).not_to_have_text("")
    shots.take("training-log")
    expect(tid(page, "step4-result")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(tid(page, "metric-accuracy")).to_be_visible()
    expect(tid(page, "export-button")).to_have_text("Exporter sous forme API")
    shots.take("result")


def export_api(page: Page, stack: Stack, shots: Screenshots) -> tuple[str, str, str]:
    """Clicks the export button and submits the form as prefilled; returns (api id, API URL, key)
    as the modal shows them."""
    tid(page, "export-button").click()
    tid(page, "export-submit").click()
    modal = tid(page, "export-modal")
    expect(modal).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(tid(page, "key-warning")).to_be_visible()
    expect(tid(page, "copy-api-url")).to_be_visible()
    expect(tid(page, "copy-export-api-key")).to_be_visible()
    api_url = tid(page, "export-api-url").input_value()
    api_key = tid(page, "export-api-key").input_value()
    assert api_url.startswith(stack.ingress_url + "/api/predict/"), api_url
    assert len(api_key) >= 40, "the full key is shown once"
    api_id = api_url.rsplit("/", 1)[1]
    shots.take("export-modal", full_page=False)
    page.keyboard.press("Escape")  # Escape closes the modal
    expect(modal).to_be_hidden()
    return api_id, api_url, api_key


def test_user_trains_exports_calls_monitors_deactivates_and_deletes_an_api_in_the_browser(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    require_dashboard_build()
    base = stack.management_url
    model_name = f"iris-e2e-{uuid.uuid4().hex[:6]}"
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        shots = Screenshots(page)
        # The whole journey runs under the dashboard's Content-Security-Policy (issue 9).
        csp_reports: list[str] = []
        page.on(
            "console",
            lambda m: csp_reports.append(m.text) if "Content Security Policy" in m.text else None,
        )
        try:
            log_in(page, base, stack.admin_username, stack.admin_password, shots)
            train_iris(page, model_name, shots)
            api_id, api_url, api_key = export_api(page, stack, shots)

            # The documentation tab shows the endpoint, the features and a request that works.
            page.goto(f"{base}/monitoring/{api_id}?tab=docs")
            expect(tid(page, "api-docs")).to_be_visible()
            expect(tid(page, "docs-endpoint")).to_contain_text(api_url)
            expect(tid(page, "docs-features")).to_contain_text("sepal_length_cm")
            expect(tid(page, "docs-curl")).to_contain_text("X-API-Key")
            expect(tid(page, "copy-docs-python")).to_be_visible()
            shots.take("api-docs")
            example = tid(page, "docs-example-request").locator("pre").inner_text()

            # Call the API with the key from the modal, as an outside application would.
            features = json.loads(example)
            for _ in range(3):
                status, body = http_json("POST", api_url, features, {"X-API-Key": api_key})
                assert status == 200, body
                assert "prediction" in body
            status, body = http_json("POST", api_url, {"nope": 1}, {"X-API-Key": api_key})
            assert status == 400, body

            # The requests appear on the detail page (refreshed until the events have landed).
            tid(page, "tab-overview").click()
            expect(tid(page, "stat-cards")).to_be_visible()
            wait_until(
                "the 4 requests on the API detail page",
                lambda: tid(page, "stat-total-value").inner_text().strip() == "4",
                timeout_s=60,
                every=lambda: tid(page, "refresh-button").click(),
            )
            expect(tid(page, "stat-success-value")).to_have_text(re.compile(r"^75\s?%$"))
            expect(tid(page, "chart-volume").locator("svg").first).to_be_visible()
            expect(tid(page, "chart-histogram").locator("svg").first).to_be_visible()
            shots.take("api-detail")
            tid(page, "tab-requests").click()
            expect(tid(page, "request-row")).to_have_count(4)
            expect(tid(page, "request-total")).to_have_text("(4)")
            tid(page, "request-status-filter").select_option("4xx")
            expect(tid(page, "request-row")).to_have_count(1)
            shots.take("request-history")

            # The list shows the API with its usage; search and status filter narrow it.
            tid(page, "nav-monitoring").click()
            row = page.locator(f'[data-testid="api-row"][data-api-id="{api_id}"]')
            expect(row).to_be_visible()
            expect(row.get_by_test_id("api-row-total")).to_have_text("4")
            expect(row).to_contain_text(model_name)
            api_name = row.get_attribute("data-api-name") or ""
            tid(page, "apis-search").fill("no-such-api-zzz")
            expect(row).to_be_hidden()
            expect(tid(page, "empty-state")).to_be_visible()
            tid(page, "apis-search").fill(model_name)
            expect(row).to_be_visible()
            tid(page, "apis-status-filter").select_option("inactive")
            expect(row).to_be_hidden()
            tid(page, "apis-status-filter").select_option("")
            tid(page, "sort-total_requests").click()
            expect(page.locator("th[aria-sort='descending']")).to_have_count(1)
            tid(page, "apis-search").fill("")
            shots.take("monitoring-list")

            # Regenerate the key (warning first): the new key works, the old one is refused.
            row.click()
            expect(tid(page, "api-detail")).to_be_visible()
            tid(page, "regenerate-key-button").click()
            expect(tid(page, "confirm-dialog")).to_be_visible()
            tid(page, "confirm-ok").click()
            expect(tid(page, "new-key-modal")).to_be_visible()
            expect(tid(page, "key-warning")).to_be_visible()
            old_key, api_key = api_key, tid(page, "new-api-key").input_value()
            assert api_key != old_key
            tid(page, "new-key-close").click()
            expect(tid(page, "new-key-modal")).to_be_hidden()
            wait_until(
                "the new key to work and the old one to be refused",
                lambda: (
                    call(api_url, features, api_key) == 200
                    and call(api_url, features, old_key) == 403
                ),
                timeout_s=15,
            )

            # Deactivate through the confirmation: the API then answers 403.
            tid(page, "toggle-status-button").click()
            dialog = tid(page, "confirm-dialog")
            expect(dialog).to_be_visible()
            shots.take("deactivate-confirmation", full_page=False)
            tid(page, "confirm-ok").click()
            expect(dialog).to_be_hidden()
            expect(tid(page, "api-detail").get_by_test_id("status-badge").first).to_have_attribute(
                "data-status", "inactive"
            )
            wait_until(
                "the deactivated API to answer 403",
                lambda: call(api_url, features, api_key) == 403,
                timeout_s=15,
            )

            # Delete: the confirmation names the API and needs the name typed.
            tid(page, "delete-button").click()
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text(api_name)
            expect(tid(page, "confirm-ok")).to_be_disabled()
            tid(page, "confirm-input").fill(api_name)
            shots.take("delete-confirmation", full_page=False)
            tid(page, "confirm-ok").click()
            expect(page).to_have_url(re.compile(r"/monitoring$"))
            expect(page.locator(f'[data-testid="api-row"][data-api-id="{api_id}"]')).to_have_count(
                0
            )
            wait_until(
                "the deleted API to stop answering",
                lambda: (
                    http_json("POST", api_url, features, {"X-API-Key": api_key})[0]
                    in (401, 403, 404)
                ),
                timeout_s=15,
            )

            # English is one click away and remembered across reloads.
            tid(page, "lang-toggle").click()
            expect(tid(page, "nav-models")).to_have_text("Models")
            page.reload()
            expect(tid(page, "nav-models")).to_have_text("Models")
            assert csp_reports == [], csp_reports
        finally:
            with capsys.disabled():
                print(f"\ndashboard screenshots ({len(shots.saved)}): {SCREENSHOTS}")
            context.close()


def test_dashboard_logic_tests_pass_under_vitest() -> None:
    """CSV header parsing, rate formatting and FR/EN dictionary parity (dashboard/src/__tests__)."""
    dashboard = REPO / "dashboard"
    npm = shutil.which("npm")
    if npm is None or not (dashboard / "node_modules").is_dir():
        pytest.fail("dashboard packages missing: run `make bootstrap` (or `npm ci` in dashboard/)")
    result = subprocess.run(
        [npm, "test", "--silent"], cwd=dashboard, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
