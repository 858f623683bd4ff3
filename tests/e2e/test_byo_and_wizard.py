"""Bring your own model and the CSV wizard's columns in a real browser (issue 11).

One user journey: upload a .skops pipeline whose form the file pre-fills (features, the encoder's
categories, classes, task), edit a category, upload, export and call it; then train on a CSV
whose id-like column the wizard flags and drops in one click (with a column typed by hand), and
open "New version": the wizard keeps the CSV source, its target and the dropped column (and a
model trained on the wine dataset keeps wine, where the wizard used to reset to iris).
Screenshots at desktop and phone width under test-artifacts/screenshots/byo_and_wizard/.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from playwright.sync_api import Page, expect

from tests.e2e.dashboard_helpers import (
    SCREENSHOTS,
    Screenshots,
    chromium_browser,
    http_json,
    require_dashboard_build,
    wait_until,
)
from tests.integration.test_csv_columns import churn_with_id
from tests.stack import Stack
from tests.unit.test_model_store import upload_pipeline

pytestmark = pytest.mark.timeout(420)

UI_TIMEOUT_MS = 20_000
TRAINING_TIMEOUT_MS = 180_000
SANDBOX_MS = 120_000


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def job_status(base: str, job_id: str, auth: dict[str, str]) -> str:
    status, job = http_json("GET", f"{base}/api/training-jobs/{job_id}", headers=auth)
    assert status == 200, job
    assert job["status"] not in ("failed", "cancelled"), job
    return str(job["status"])


def test_upload_prefilled_from_the_file_and_wizard_drops_the_id_column(
    stack: Stack, tmp_path: Path
) -> None:
    require_dashboard_build()
    base = stack.management_url
    suffix = uuid.uuid4().hex[:6]
    status, token = http_json(
        "POST",
        base + "/api/auth/token",
        {"username": stack.admin_username, "password": stack.admin_password},
    )
    assert status == 200, token
    auth = {"Authorization": "Bearer " + token["access_token"]}
    wine_model = f"wine-{suffix}"
    status, wine_job = http_json(
        "POST",
        base + "/api/models/train",
        {"name": wine_model, "dataset": "wine", "algorithm": "logistic_regression"},
        auth,
    )
    assert status == 202, wine_job
    skops_file = tmp_path / "shop.skops"
    skops_file.write_bytes(sio.dumps(upload_pipeline()))
    csv_file = tmp_path / "churn.csv"
    csv_file.write_bytes(churn_with_id())

    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        shots = Screenshots(page, SCREENSHOTS / "byo_and_wizard")
        try:
            page.goto(base + "/")
            expect(page).to_have_url(re.compile(r"/login"))
            tid(page, "login-username").fill(stack.admin_username)
            tid(page, "login-password").fill(stack.admin_password)
            tid(page, "login-submit").click()
            expect(tid(page, "models-page")).to_be_visible()

            # Bring your own model: the file pre-fills the form.
            tid(page, "upload-model-button").click()
            expect(tid(page, "upload-page")).to_be_visible()
            tid(page, "upload-file").set_input_files(str(skops_file))
            # The first check in a fresh stack starts the sandbox's fork server (imports sklearn).
            expect(tid(page, "upload-inspected")).to_contain_text("Pipeline", timeout=SANDBOX_MS)
            expect(tid(page, "upload-feature-row")).to_have_count(3)
            expect(tid(page, "upload-feature-name-0")).to_have_value("size")
            expect(tid(page, "upload-feature-type-0")).to_have_value("number")
            expect(tid(page, "upload-feature-name-1")).to_have_value("color")
            expect(tid(page, "upload-feature-type-1")).to_have_value("category")
            expect(tid(page, "upload-feature-categories-1")).to_have_value("blue, red")
            expect(tid(page, "upload-feature-name-2")).to_have_value("rest")
            expect(tid(page, "upload-task")).to_have_value("classification")
            expect(tid(page, "upload-classes")).to_have_value("0, 1")
            expect(tid(page, "upload-name")).to_have_value("shop")
            shots.take("upload-prefilled")
            model_name = f"shop-{suffix}"
            tid(page, "upload-name").fill(model_name)
            tid(page, "upload-feature-categories-1").fill("blue, red, green")
            tid(page, "upload-submit").click()
            expect(tid(page, "model-detail")).to_be_visible()
            expect(tid(page, "model-detail")).to_contain_text(model_name)
            model_id = page.url.rstrip("/").rsplit("/", 1)[1]
            status, model = http_json("GET", f"{base}/api/models/{model_id}", headers=auth)
            assert status == 200, model
            color = model["versions"][0]["features"][1]
            assert color == {**color, "name": "color", "categories": ["blue", "red", "green"]}

            # The uploaded model serves predictions once exported.
            status, created = http_json(
                "POST", f"{base}/api/export/{model_id}", {"name": model_name}, auth
            )
            assert status == 201, created
            row = {"size": 2.0, "color": "green", "rest": 0.3}
            # Ingress learns of the new API from a control event: 404 until it arrives.
            for _ in range(60):
                status, answer = http_json(
                    "POST", created["api_url"], row, {"X-API-Key": created["api_key"]}
                )
                if status != 404:
                    break
                time.sleep(0.25)
            assert status == 200, answer
            assert str(answer["prediction"]) in ("0", "1"), answer

            # CSV training: the id-like column is flagged, not fatal, and dropped in one click.
            page.goto(base + "/models")
            tid(page, "new-model-button").click()
            csv_model = f"churn-{suffix}"
            tid(page, "wizard-name").fill(csv_model)
            tid(page, "wizard-source-csv").check()
            tid(page, "wizard-file").set_input_files(str(csv_file))
            flag = tid(page, "wizard-idlike")
            expect(flag).to_have_count(1)
            expect(flag).to_have_attribute("data-column", "customer_id")
            expect(tid(page, "wizard-target")).to_have_value("churned")
            expect(tid(page, "wizard-next")).to_be_enabled()  # a warning, not an error
            shots.take("wizard-idlike-flag")
            tid(page, "wizard-idlike-drop-customer_id").click()
            expect(flag).to_have_count(0)
            expect(tid(page, "wizard-keep-customer_id")).not_to_be_checked()
            tid(page, "wizard-type-zip").select_option("categorical")
            shots.take("wizard-columns")
            tid(page, "wizard-next").click()
            tid(page, "wizard-algorithm").select_option("logistic_regression")
            tid(page, "wizard-train").click()
            expect(tid(page, "training-status")).to_have_attribute(
                "data-status", "succeeded", timeout=TRAINING_TIMEOUT_MS
            )
            expect(tid(page, "step4-result")).to_be_visible()
            status, models = http_json("GET", f"{base}/api/models", headers=auth)
            [trained] = [m for m in models["items"] if m["name"] == csv_model]
            features = {f["name"]: f["type"] for f in trained["versions"][0]["features"]}
            assert features == {
                "zip": "category",
                "age": "integer",
                "vip": "boolean",
                "score": "integer",
            }

            # "New version" keeps the CSV source, its target and the column left out.
            page.goto(f"{base}/models/{trained['id']}")
            tid(page, "new-version-button").click()
            expect(tid(page, "wizard-name")).to_have_value(csv_model)
            expect(tid(page, "wizard-previous-source")).to_contain_text("churn.csv")
            expect(tid(page, "wizard-source-csv")).to_be_checked()
            tid(page, "wizard-file").set_input_files(str(csv_file))
            expect(tid(page, "wizard-target")).to_have_value("churned")
            expect(tid(page, "wizard-keep-customer_id")).not_to_be_checked()
            expect(tid(page, "wizard-type-zip")).to_have_value("categorical")
            expect(tid(page, "wizard-idlike")).to_have_count(0)
            shots.take("wizard-new-version")

            # ... and a model trained on a built-in dataset keeps that dataset (not iris).
            wait_until(
                "the wine model's training",
                lambda: job_status(base, wine_job["id"], auth) == "succeeded",
                timeout_s=TRAINING_TIMEOUT_MS / 1000,
            )
            page.goto(f"{base}/models/new?name={wine_model}")
            expect(tid(page, "wizard-previous-source")).to_be_visible()
            expect(tid(page, "wizard-source-builtin")).to_be_checked()
            expect(tid(page, "wizard-dataset")).to_have_value("wine")
        except BaseException:
            print(stack.log_tail())
            raise
        finally:
            context.close()
