"""The Users page and the account page in a real browser against the whole stack (issue 11).

The admin creates a user (the generated password shown once), the user logs in from another
browser and changes their password (a wrong current password is refused first), the admin sees
the last login and deactivates the account through its confirmation: the user's session ends and
their password is refused. Screenshots at desktop and phone width under
test-artifacts/screenshots/users/ and users-account/.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.dashboard_helpers import (
    DESKTOP,
    SCREENSHOTS,
    Screenshots,
    chromium_browser,
    http_json,
    require_dashboard_build,
)
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

UI_TIMEOUT_MS = 20_000


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def open_page(browser: Browser) -> Page:
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    context.set_default_timeout(UI_TIMEOUT_MS)
    return context.new_page()


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base + "/login")
    tid(page, "login-username").fill(username)
    tid(page, "login-password").fill(password)
    tid(page, "login-submit").click()
    expect(tid(page, "models-page")).to_be_visible()


def login_status(base: str, username: str, password: str) -> tuple[int, Any]:
    return http_json("POST", f"{base}/api/auth/token", {"username": username, "password": password})


def test_admin_creates_and_deactivates_a_user_who_changed_their_password(stack: Stack) -> None:
    require_dashboard_build()
    base = stack.management_url
    username = f"ui-{uuid.uuid4().hex[:6]}"
    new_password = "a-new-password-42"
    with chromium_browser() as browser:
        admin = open_page(browser)
        shots = Screenshots(admin, SCREENSHOTS / "users")
        log_in(admin, base, stack.admin_username, stack.admin_password)

        # The admin creates the user; the generated password is shown once, with a copy button.
        tid(admin, "nav-users").click()
        expect(tid(admin, "users-page")).to_be_visible()
        expect(tid(admin, "nav-users")).to_have_text("Utilisateurs")
        me = admin.locator(f'[data-testid="user-row"][data-username="{stack.admin_username}"]')
        expect(me.get_by_test_id("user-toggle-active")).to_be_disabled()  # not yourself
        tid(admin, "new-user-button").click()
        expect(tid(admin, "create-user-modal")).to_be_visible()
        password = tid(admin, "new-user-password").input_value()
        assert len(password) >= 12, "a generated password is offered"
        tid(admin, "new-user-username").fill(username)
        tid(admin, "new-user-role").select_option("user")
        shots.take("create-user", full_page=False)
        tid(admin, "create-user-submit").click()
        expect(tid(admin, "credentials-reveal")).to_be_visible()
        expect(tid(admin, "revealed-password")).to_have_value(password)
        expect(tid(admin, "copy-password")).to_be_visible()
        tid(admin, "create-user-close").click()
        expect(tid(admin, "create-user-modal")).to_be_hidden()
        row = admin.locator(f'[data-testid="user-row"][data-username="{username}"]')
        expect(row).to_be_visible()
        expect(row.get_by_test_id("user-status")).to_have_attribute("data-status", "active")
        expect(row.get_by_test_id("user-last-login")).to_have_text("Jamais")

        # The user logs in elsewhere and changes their password from "My account".
        member = open_page(browser)
        member_shots = Screenshots(member, SCREENSHOTS / "users-account")
        log_in(member, base, username, password)
        expect(tid(member, "nav-users")).to_have_count(0)  # admins only
        member.goto(base + "/users")
        expect(tid(member, "users-page")).to_have_count(0)
        tid(member, "account-link").click()
        expect(tid(member, "account-page")).to_be_visible()
        expect(tid(member, "account-summary")).to_contain_text(username)
        tid(member, "current-password").fill("not-my-password")
        tid(member, "new-password").fill(new_password)
        tid(member, "confirm-password").fill(new_password)
        tid(member, "change-password-submit").click()
        expect(tid(member, "change-password-error")).to_have_text(
            "Le mot de passe actuel est incorrect."
        )
        tid(member, "current-password").fill(password)
        tid(member, "change-password-submit").click()
        expect(tid(member, "password-changed")).to_be_visible()
        member_shots.take("account")
        assert login_status(base, username, password)[0] == 401
        assert login_status(base, username, new_password)[0] == 200
        member.reload()  # the fresh token the change answered replaced the stored one
        expect(tid(member, "account-page")).to_be_visible()

        # The admin sees the last login, then deactivates the account through the confirmation.
        admin.reload()
        expect(row.get_by_test_id("user-last-login")).not_to_have_text("Jamais")
        shots.take("users")
        row.get_by_test_id("user-toggle-active").click()
        expect(tid(admin, "confirm-dialog")).to_be_visible()
        expect(tid(admin, "confirm-dialog")).to_contain_text(username)
        shots.take("deactivate-confirm", full_page=False)
        tid(admin, "confirm-ok").click()
        expect(tid(admin, "confirm-dialog")).to_be_hidden()
        expect(row).to_have_attribute("data-active", "false")
        expect(row.get_by_test_id("user-status")).to_have_text("Désactivé")
        expect(row.get_by_test_id("user-toggle-active")).to_have_text("Réactiver")
        shots.take("users-deactivated")
        status, body = login_status(base, username, new_password)
        assert status == 403 and body["error"]["code"] == "ACCOUNT_DEACTIVATED", body

        # The user's open session ends at their next call; logging in says why.
        tid(member, "nav-models").click()
        expect(member).to_have_url(re.compile(r"/login"))
        tid(member, "login-username").fill(username)
        tid(member, "login-password").fill(new_password)
        tid(member, "login-submit").click()
        expect(tid(member, "login-error")).to_have_text(
            "Ce compte est désactivé. Contactez un administrateur."
        )
        member_shots.take("login-deactivated")
