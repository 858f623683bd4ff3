"""The API docs' "Try it" panel in a real browser (issue 14): the form is built from the features
and prefilled with the example row; with the pasted key the browser calls ingress directly (CORS)
and shows the status, the prediction with its probabilities and the latencies; a wrong key shows
the 403's message and no key the 401's, in French; an API of images gets a drop zone that starts
with the docs' example image; the keys never go to the management API nor into the page's
storage. Screenshots under test-artifacts/screenshots/try-it/."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

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

IRIS_CLASSES = ("setosa", "versicolor", "virginica")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def exported_apis(stack: Stack, datasets: list[str]) -> tuple[str, str, list[tuple[str, str]]]:
    """A fresh user (name, password) owning one exported API (id, key) per built-in dataset,
    trained side by side, each answering through ingress."""
    base = stack.management_url
    admin_login = {"username": stack.admin_username, "password": stack.admin_password}
    status, token = http_json("POST", base + "/api/auth/token", admin_login)
    assert status == 200, token
    admin = {"Authorization": "Bearer " + token["access_token"]}
    username, password = f"try{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    body = {"username": username, "password": password}
    status, created = http_json("POST", base + "/api/users", body, admin)
    assert status == 201, created
    status, token = http_json("POST", base + "/api/auth/token", body)
    assert status == 200, token
    headers = {"Authorization": "Bearer " + token["access_token"]}
    jobs = []
    for dataset in datasets:
        train = {"name": f"{dataset}-try-{uuid.uuid4().hex[:6]}", "dataset": dataset}
        status, job = http_json(
            "POST",
            base + "/api/models/train",
            {**train, "algorithm": "logistic_regression"},
            headers,
        )
        assert status == 202, job
        jobs.append(job)

    def trained() -> bool:
        for i, job in enumerate(jobs):
            status, jobs[i] = http_json(
                "GET", f"{base}/api/training-jobs/{job['id']}", None, headers
            )
            assert status == 200 and jobs[i]["status"] != "failed", jobs[i]
        return all(job["status"] == "succeeded" for job in jobs)

    wait_until("the models to train", trained, timeout_s=120)
    apis = []
    for job in jobs:
        status, export = http_json("POST", f"{base}/api/export/{job['model_id']}", {}, headers)
        assert status == 201, export
        url, key, example = export["api_url"], export["api_key"], export["example_request"]

        # Ingress learns of a new API from a control event: bounded wait until it predicts.
        def known() -> bool:
            return http_json("POST", url, example, {"X-API-Key": key})[0] == 200  # noqa: B023

        wait_until("ingress to serve the new API", known, timeout_s=30)
        apis.append((export["api"]["id"], key))
    return username, password, apis


def test_try_it_predicts_from_the_browser_and_shows_key_errors(stack: Stack) -> None:
    require_dashboard_build()
    base = stack.management_url
    username, password, apis = exported_apis(stack, ["iris", "digits"])
    (api_id, key), (digits_id, digits_key) = apis
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
        context.set_default_timeout(20_000)
        page = context.new_page()
        shots = Screenshots(page, SCREENSHOTS / "try-it")
        to_management: list[Request] = []
        to_ingress: list[Request] = []
        page.on(
            "request",
            lambda r: (to_ingress if r.url.startswith(stack.ingress_url) else to_management).append(
                r
            ),
        )
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        try:
            page.goto(base + "/")
            expect(page).to_have_url(re.compile(r"/login"))
            tid(page, "login-username").fill(username)
            tid(page, "login-password").fill(password)
            tid(page, "login-submit").click()
            expect(tid(page, "models-page")).to_be_visible()
            page.goto(f"{base}/monitoring/{api_id}?tab=docs")

            panel = tid(page, "tryit-panel")
            expect(panel).to_be_visible()
            # One input per feature, prefilled with the docs' example row.
            fields = tid(page, "tryit-fields").locator("input")
            expect(fields).to_have_count(4)
            for i in range(4):
                expect(fields.nth(i)).to_have_value(re.compile(r"^-?\d"))
            key_input = tid(page, "tryit-key")
            expect(key_input).to_have_attribute("type", "password")
            key_input.fill(key)
            tid(page, "tryit-key-toggle").click()
            expect(key_input).to_have_attribute("type", "text")
            tid(page, "tryit-key-toggle").click()
            expect(key_input).to_have_attribute("type", "password")

            tid(page, "tryit-send").click()
            expect(tid(page, "tryit-status")).to_have_text("200")
            prediction = tid(page, "tryit-prediction").inner_text()
            assert prediction.strip('"') in IRIS_CLASSES, prediction
            expect(tid(page, "tryit-probabilities").locator("li")).to_have_count(3)
            expect(tid(page, "tryit-latency")).to_have_text(re.compile(r"^\d[\d  ,.]* ms$"))
            expect(tid(page, "tryit-server-time")).to_have_text(re.compile(r" ms$"))
            expect(tid(page, "tryit-remaining")).to_have_text(re.compile(r"^\d+ / 100$"))
            shots.take("try-it-prediction")

            # Exactly what was sent went to ingress, cross-origin, with the key in its header.
            posts = [r for r in to_ingress if r.method == "POST"]
            assert len(posts) == 1 and posts[0].url.endswith(f"/api/predict/{api_id}")
            assert posts[0].headers.get("x-api-key") == key
            assert "cookie" not in posts[0].headers

            # A wrong key: the 403's message, in French; no key at all: the 401's.
            key_input.fill(key[:-4] + "nope")
            tid(page, "tryit-send").click()
            expect(tid(page, "tryit-status")).to_have_text("403")
            expect(tid(page, "tryit-error")).to_contain_text("Clé d\u2019API invalide")
            expect(tid(page, "tryit-prediction")).to_have_count(0)
            key_input.fill("")
            tid(page, "tryit-send").click()
            expect(tid(page, "tryit-status")).to_have_text("401")
            expect(tid(page, "tryit-error")).to_contain_text("Clé d\u2019API manquante")
            shots.take("try-it-401")

            # A value that is not a number is caught in the form, before anything is sent.
            fields.first.fill("abc")
            expect(tid(page, "tryit-send")).to_be_disabled()
            tid(page, "tryit-reset").click()
            expect(tid(page, "tryit-send")).to_be_enabled()

            # An API of images (the built-in digits): a drop zone instead of 64 numbers, starting
            # with the docs' example image; a file that is no PNG or JPEG is refused in the page.
            page.goto(f"{base}/monitoring/{digits_id}?tab=docs")
            expect(tid(page, "tryit-dropzone")).to_be_visible()
            expect(tid(page, "tryit-fields")).to_have_count(0)
            tid(page, "tryit-image").set_input_files(
                files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}]
            )
            expect(tid(page, "tryit-image-error")).to_be_visible()
            tid(page, "tryit-key").fill(digits_key)
            tid(page, "tryit-send").click()
            expect(tid(page, "tryit-status")).to_have_text("200")
            expect(tid(page, "tryit-prediction")).to_have_text(re.compile(r'^"?\d"?$'))
            expect(tid(page, "tryit-probabilities").locator("li")).to_have_count(10)
            image_posts = [r for r in to_ingress if r.url.endswith(f"/api/predict/{digits_id}")]
            sent = json.loads(image_posts[-1].post_data or "{}")
            assert list(sent) == ["image"] and base64.b64decode(sent["image"])[:8] == PNG_MAGIC

            # The keys went nowhere else: not to the management API, not into storage.
            for request in to_management:
                seen = request.url + str(request.headers) + (request.post_data or "")
                assert key not in seen and digits_key not in seen
            stored = page.evaluate(
                "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])"
            )
            assert key[:-4] not in stored and digits_key not in stored
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            context.close()
