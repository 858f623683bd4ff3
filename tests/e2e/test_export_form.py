"""The export form in a real browser (issue 11): "Exporter sous forme API" opens a form (name
prefilled from the model, rate limit with its bounds checked, payload logging); a double submit
sends two requests with one Idempotency-Key and exactly one API exists; the modal's curl command,
run as shown, gets a prediction. Screenshots under test-artifacts/screenshots/export-form/."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Response, expect

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


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def new_user_with_model(stack: Stack) -> tuple[str, str, dict[str, str], str, str]:
    """A fresh user (username, password, auth headers) owning an iris model (id, name)."""
    base = stack.management_url
    status, token = http_json(
        "POST",
        base + "/api/auth/token",
        {"username": stack.admin_username, "password": stack.admin_password},
    )
    assert status == 200, token
    admin = {"Authorization": "Bearer " + token["access_token"]}
    username, password = f"form{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    body = {"username": username, "password": password}
    status, created = http_json("POST", base + "/api/users", body, admin)
    assert status == 201, created
    status, token = http_json("POST", base + "/api/auth/token", body)
    assert status == 200, token
    headers = {"Authorization": "Bearer " + token["access_token"]}
    name = f"iris-form-{uuid.uuid4().hex[:6]}"
    train = {"name": name, "dataset": "iris", "algorithm": "logistic_regression"}
    status, job = http_json("POST", base + "/api/models/train", train, headers)
    assert status == 202, job

    def done() -> bool:
        nonlocal job
        status, job = http_json("GET", f"{base}/api/training-jobs/{job['id']}", None, headers)
        assert status == 200 and job["status"] != "failed", job
        return bool(job["status"] == "succeeded")

    wait_until("the iris model to train", done, timeout_s=120)
    return username, password, headers, str(job["model_id"]), name


def test_user_fills_the_export_form_double_submits_and_gets_one_api(stack: Stack) -> None:
    require_dashboard_build()
    base = stack.management_url
    username, password, headers, model_id, model_name = new_user_with_model(stack)
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        shots = Screenshots(page, SCREENSHOTS / "export-form")
        posts: list[Request] = []
        answers: list[Response] = []
        page.on("request", lambda r: posts.append(r) if "/api/export/" in r.url else None)
        page.on("response", lambda r: answers.append(r) if "/api/export/" in r.url else None)
        try:
            page.goto(base + "/")
            expect(page).to_have_url(re.compile(r"/login"))
            tid(page, "login-username").fill(username)
            tid(page, "login-password").fill(password)
            tid(page, "login-submit").click()
            expect(tid(page, "models-page")).to_be_visible()
            page.goto(f"{base}/models/{model_id}")

            # The button opens a form; nothing is created until it is submitted.
            tid(page, "export-button").click()
            form = tid(page, "export-form")
            expect(form).to_be_visible()
            expect(tid(page, "export-name")).to_have_value(model_name)
            expect(tid(page, "export-rate-limit")).to_have_value("100")
            expect(tid(page, "export-log-payloads")).to_be_checked()
            assert posts == []

            # Bounds checked in the form (the server checks them too).
            submit = tid(page, "export-submit")
            for bad in ("0", "1000001", "2.5"):
                tid(page, "export-rate-limit").fill(bad)
                expect(tid(page, "export-rate-limit-error")).to_be_visible()
                expect(submit).to_be_disabled()
            tid(page, "export-rate-limit").fill("250")
            expect(tid(page, "export-rate-limit-error")).to_be_hidden()
            tid(page, "export-name").fill("   ")
            expect(tid(page, "export-name-error")).to_be_visible()
            expect(submit).to_be_disabled()
            api_name = f"scoring-{uuid.uuid4().hex[:6]}"
            tid(page, "export-name").fill(api_name)
            page.locator("label.switch", has=tid(page, "export-log-payloads")).click()
            expect(tid(page, "export-log-payloads")).not_to_be_checked()
            expect(submit).to_be_enabled()
            shots.take("export-form", full_page=False)

            # A double click that gets through before the button disables itself: two clicks in
            # one task (as a fast double click or a stuttering mouse sends them).
            submit.evaluate("button => { button.click(); button.click() }")
            modal = tid(page, "export-modal")
            expect(modal).to_be_visible(timeout=30_000)
            # Playwright delivers response events only inside its own calls: pump them.
            wait_until(
                "both answers",
                lambda: len(answers) == 2,
                timeout_s=20,
                every=lambda: page.wait_for_timeout(100),
            )
            assert len(posts) == 2
            keys = {r.headers.get("idempotency-key") for r in posts}
            assert len(keys) == 1 and None not in keys, keys
            assert json.loads(posts[0].post_data or "{}") == json.loads(posts[1].post_data or "{}")
            assert sorted(r.status for r in answers) == [201, 201]
            replayed = [r.headers.get("idempotent-replayed") for r in answers]
            assert replayed.count("true") == 1, replayed  # the second answer is the first's

            expect(tid(page, "export-settings")).to_contain_text("250")
            expect(tid(page, "export-settings")).to_contain_text("non")
            api_url = tid(page, "export-api-url").input_value()
            api_key = tid(page, "export-api-key").input_value()
            curl = tid(page, "export-curl").locator("pre").inner_text()
            assert api_key in curl and "{ ... }" not in curl
            shots.take("export-created", full_page=False)

            # Exactly one API, with the form's settings.
            status, listed = http_json(
                "GET", f"{base}/api/exports?model_id={model_id}", None, headers
            )
            assert status == 200, listed
            assert [
                (a["name"], a["rate_limit_per_minute"], a["log_payloads"]) for a in listed["items"]
            ] == [(api_name, 250, False)]
            assert api_url.endswith("/api/predict/" + listed["items"][0]["id"])

            # The modal's command, pasted into a shell, answers a prediction (ingress learns of
            # the API from a control event: a few tries, bounded, while it propagates).
            for _ in range(30):
                result = subprocess.run(
                    ["sh", "-c", curl], capture_output=True, text=True, timeout=30
                )
                assert result.returncode == 0, (curl, result.stderr)
                answer = json.loads(result.stdout)
                if "prediction" in answer:
                    break
                time.sleep(0.5)
            assert answer["prediction"] in ("setosa", "versicolor", "virginica"), answer

            page.keyboard.press("Escape")
            expect(modal).to_be_hidden()
        finally:
            context.close()
