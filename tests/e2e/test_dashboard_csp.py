"""The dashboard and /docs work in Chromium under the CSP the server sends (issue 9 item 8): the
Vite build's scripts and styles load, /docs's inline script runs (allowed by its hash), and the
browser reports no Content-Security-Policy violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.dashboard_helpers import chromium_browser, require_dashboard_build
from tests.stack import Stack

pytestmark = pytest.mark.timeout(180)


def test_dashboard_and_docs_run_under_their_csp_in_chromium(stack: Stack) -> None:
    require_dashboard_build()
    base = stack.management_url
    with chromium_browser() as browser:
        page = browser.new_page()
        reports: list[str] = []
        page.on(
            "console",
            lambda m: reports.append(m.text) if "Content Security Policy" in m.text else None,
        )
        response = page.goto(base + "/")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        page.get_by_test_id("login-username").fill(stack.admin_username)
        page.get_by_test_id("login-password").fill(stack.admin_password)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("models-page")).to_be_visible(timeout=20_000)
        page.get_by_test_id("nav-monitoring").click()
        expect(page.get_by_test_id("monitoring-page")).to_be_visible(timeout=20_000)

        page.goto(base + "/docs")
        expect(page.locator("#ops details").first).to_be_visible(timeout=20_000)
        assert reports == [], reports
