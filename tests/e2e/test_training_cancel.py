"""A user cancels a running training job from the wizard, through its confirmation (issue 9)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.dashboard_helpers import chromium_browser, require_dashboard_build
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

UI_TIMEOUT_MS = 20_000
START_TIMEOUT_MS = 120_000


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def test_user_cancels_a_running_training_job_from_the_wizard(stack: Stack) -> None:
    """The Cancel button asks first, then the job ends `cancelled` and the button goes away."""
    require_dashboard_build()
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        try:
            page.goto(stack.management_url + "/")
            expect(page).to_have_url(re.compile(r"/login"))
            tid(page, "login-username").fill(stack.admin_username)
            tid(page, "login-password").fill(stack.admin_password)
            tid(page, "login-submit").click()
            expect(tid(page, "models-page")).to_be_visible()

            tid(page, "new-model-button").click()
            tid(page, "wizard-name").fill(f"slow-{uuid.uuid4().hex[:6]}")
            tid(page, "wizard-source-builtin").check()
            tid(page, "wizard-dataset").select_option("digits")
            tid(page, "wizard-next").click()
            tid(page, "wizard-algorithm").select_option("gradient_boosting")
            tid(page, "param-n_estimators").fill("1000")
            tid(page, "param-max_depth").fill("10")
            tid(page, "wizard-train").click()
            status = tid(page, "training-status")
            expect(status).to_have_attribute("data-status", "running", timeout=START_TIMEOUT_MS)

            tid(page, "training-cancel").click()
            dialog = tid(page, "confirm-dialog")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("Annuler l'entraînement ?")
            tid(page, "confirm-ok").click()
            expect(dialog).to_be_hidden()
            expect(status).to_have_attribute("data-status", "cancelled")
            expect(status).to_have_text("Annulé")
            expect(tid(page, "training-cancelled")).to_be_visible()
            expect(tid(page, "training-cancel")).to_have_count(0)
        finally:
            context.close()
