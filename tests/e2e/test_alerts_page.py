"""Alerts in a real browser against the whole stack (issue 12).

The owner adds a 4xx-rate rule in the API page's rules editor (threshold typed in %, saved with
PUT and stored as a share), sends bad requests through the ingress, sees the firing badge in the
API list once the engine has evaluated (bounded wait: the shared stack keeps the default
evaluation period), and silences the alert for an hour from the Alerts page, where the history
shows the transition, and acknowledges it; then deactivates and deletes the API from the list,
each through its confirmation (the deletion asks for the name). Screenshots go to
test-artifacts/screenshots/alerts/.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

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
SHOTS = SCREENSHOTS / "alerts"
# Default evaluation period 15 s: a rule whose condition holds fires within two periods; the
# consumer's flush and the rollups add a little.
FIRING_TIMEOUT_S = 150


def tid(page: Page | Locator, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def train_iris(base: str, headers: dict[str, str], name: str) -> dict[str, Any]:
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


def test_a_4xx_rule_fires_shows_a_badge_and_is_silenced_from_the_alerts_page(stack: Stack) -> None:
    require_dashboard_build()
    base = stack.management_url
    status, token = http_json(
        "POST",
        base + "/api/auth/token",
        {"username": stack.admin_username, "password": stack.admin_password},
    )
    assert status == 200, token
    headers = {"Authorization": "Bearer " + token["access_token"]}
    name = f"alerts-e2e-{uuid.uuid4().hex[:6]}"
    job = train_iris(base, headers, name)
    status, created = http_json("POST", f"{base}/api/export/{job['model_id']}", {}, headers)
    assert status == 201, created
    api_id = str(created["api"]["id"])
    api_url, api_key = created["api_url"], created["api_key"]
    status, before = http_json("GET", f"{base}/api/exports/{api_id}/alert-rules", None, headers)
    assert status == 200, before
    kept = {r["id"] for r in before["items"]}

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

            # The rules editor: a 4xx rule at 10 %, window 5 min, for 0, from 3 requests.
            page.goto(f"{base}/monitoring/{api_id}")
            editor = tid(page, "alert-rules")
            expect(editor).to_be_visible()
            expect(tid(page, "rules-save")).to_be_disabled()
            rows = tid(editor, "alert-rule-row")
            expect(rows).to_have_count(len(kept))
            tid(page, "rule-add-kind").select_option("error_rate_4xx")
            tid(page, "rule-add").click()
            new = rows.nth(len(kept))
            expect(new).to_have_attribute("data-kind", "error_rate_4xx")
            tid(new, "rule-threshold").fill("abc")
            tid(page, "rules-save").click()
            expect(tid(page, "rules-message")).to_contain_text("Corrigez")
            tid(new, "rule-threshold").fill("10")
            tid(new, "rule-window").fill("5")
            tid(new, "rule-for").fill("0")
            tid(new, "rule-min-requests").fill("3")
            tid(page, "rules-save").click()
            expect(tid(page, "rules-message")).to_contain_text("Règles enregistrées")
            expect(tid(page, "rules-save")).to_be_disabled()
            editor.scroll_into_view_if_needed()
            shots.take("rules-editor", full_page=False)
            status, after = http_json(
                "GET", f"{base}/api/exports/{api_id}/alert-rules", None, headers
            )
            assert status == 200, after
            added = [r for r in after["items"] if r["id"] not in kept]
            assert len(added) == 1, after
            rule = added[0]
            assert rule["kind"] == "error_rate_4xx" and rule["threshold"] == pytest.approx(0.1)
            assert (rule["window_s"], rule["for_s"], rule["min_requests"]) == (300, 0, 3), rule
            assert {r["id"] for r in after["items"]} >= kept, "the other rules are kept"

            # Bad requests through the ingress: every one a 400.
            for _ in range(6):
                status, body = http_json("POST", api_url, {"nope": 1}, {"X-API-Key": api_key})
                assert status == 400, body

            # The badge in the API list once the engine has seen them.
            page.goto(f"{base}/monitoring")
            row = page.locator(f"[data-testid=api-row][data-api-id='{api_id}']")
            expect(row).to_be_visible()
            badge = tid(row, "alert-badge-firing")
            wait_until(
                "the firing badge in the API list",
                lambda: badge.count() > 0,
                FIRING_TIMEOUT_S,
                every=lambda: tid(page, "refresh-button").click(),
            )
            expect(badge).to_contain_text("déclenchée")
            expect(tid(page, "overview-alerts-value")).not_to_have_text("0")
            shots.take("list-badge")

            # The Alerts page: value vs threshold, silence for 1 h.
            # Loaded afresh rather than through the nav link: another engineer's rebuild of the
            # bundle meanwhile would leave this page asking for a lazy chunk that is gone.
            expect(tid(page, "nav-alerts")).to_have_text("Alertes")
            page.goto(f"{base}/alerts")
            expect(tid(page, "nav-alerts")).to_have_attribute("aria-current", "page")
            active = page.locator(f"[data-testid=active-alert-row][data-rule-id='{rule['id']}']")
            expect(active).to_have_attribute("data-state", "firing")
            expect(tid(active, "alert-value")).to_contain_text("100 %")
            expect(tid(active, "alert-value")).to_contain_text("seuil 10 %")
            expect(tid(active, "alert-silenced")).to_have_count(0)
            tid(active, "alert-silence").select_option("3600")
            expect(tid(active, "alert-silenced")).to_be_visible()
            expect(tid(page, "alerts-notice")).to_contain_text("en silence")
            history = page.locator(
                f"[data-testid=history-row][data-api-id='{api_id}'][data-state=firing]"
            )
            expect(history.first).to_be_visible()
            tid(active, "alert-ack").click()
            expect(tid(active, "alert-acked")).to_contain_text("Acquittée par admin")
            expect(tid(active, "alert-ack")).to_have_count(0)
            shots.take("alerts-page")
            status, now = http_json("GET", f"{base}/api/alerts/active", None, headers)
            assert status == 200, now
            mine = [a for a in now["items"] if a["rule"]["id"] == rule["id"]]
            assert len(mine) == 1 and mine[0]["state"] == "firing", now
            assert mine[0]["acked_by"] == stack.admin_username, mine
            until = datetime.fromisoformat(mine[0]["silenced_until"].replace("Z", "+00:00"))
            ahead = until - datetime.now(UTC)
            assert timedelta(minutes=55) < ahead <= timedelta(hours=1), until

            # Deactivate, then delete, from the API list, each through its confirmation.
            page.goto(f"{base}/monitoring")
            tid(row, "api-row-toggle-status").click()
            expect(tid(page, "confirm-dialog")).to_contain_text("Désactiver")
            tid(page, "confirm-ok").click()
            expect(tid(page, "confirm-dialog")).to_be_hidden()
            expect(tid(row, "status-badge")).to_have_attribute("data-status", "inactive")
            status, shown = http_json("GET", f"{base}/api/exports/{api_id}", None, headers)
            assert status == 200 and shown["status"] == "inactive", shown
            tid(row, "api-row-delete").click()
            expect(tid(page, "confirm-ok")).to_be_disabled()
            tid(page, "confirm-input").fill(name)
            shots.take("delete-confirm", full_page=False)
            tid(page, "confirm-ok").click()
            expect(row).to_have_count(0)
            expect(tid(page, "monitoring-notice")).to_contain_text(name)
            status, gone = http_json("GET", f"{base}/api/exports/{api_id}", None, headers)
            assert status == 404, gone
        finally:
            context.close()
