"""The Traffic panel in a real browser against the whole stack (issue 11).

The API serves v1 of an iris model that has a compatible v2. In the panel the owner starts a 10 %
canary of v2 and sees it (and the management API reports it); per-version figures and the shadow
agreement show what ClickHouse holds; Promote (confirmed) makes v2 serve with v1 remembered, and
Roll back (confirmed) serves v1 again. Screenshots go to test-artifacts/screenshots/traffic/.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from playwright.sync_api import Page, expect

from infra.clickhouse import create_async_client
from schemas.messages import RequestEvent
from tests.e2e.dashboard_helpers import (
    SCREENSHOTS,
    Screenshots,
    chromium_browser,
    http_json,
    require_dashboard_build,
)
from tests.integration.metrics_support import store_events
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

UI_TIMEOUT_MS = 20_000
SHOTS = SCREENSHOTS / "traffic"


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def train(base: str, headers: dict[str, str], name: str, algorithm: str) -> dict[str, Any]:
    body = {"name": name, "dataset": "iris", "algorithm": algorithm, "params": {}}
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


def store_split_events(stack: Stack, api_id: str, v1: str, v2: str) -> None:
    """20 requests answered by v1, 5 by the v2 canary, and v2 shadowing 4 of v1's (3 agree)."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    base = RequestEvent(
        event_id="-", ts=start, api_id=api_id, status_code=200, total_ms=12.0, prediction="setosa"
    )

    def event(**changes: Any) -> RequestEvent:
        return msgspec.structs.replace(base, event_id=uuid.uuid4().hex, **changes)

    primaries = [event(version_key=v1, ts=start + timedelta(seconds=i)) for i in range(20)]
    canaries = [event(version_key=v2, total_ms=25.0) for _ in range(5)]
    shadows = [
        event(
            version_key=v2,
            shadow=True,
            shadow_of=p.event_id,
            total_ms=30.0,
            prediction="setosa" if i < 3 else "virginica",
        )
        for i, p in enumerate(primaries[:4])
    ]

    async def insert() -> None:
        client = await create_async_client(stack.clickhouse_url)
        try:
            await store_events(client, stack.clickhouse_database, primaries + canaries + shadows)
        finally:
            await client.close()

    asyncio.run(insert())


def test_set_a_canary_see_it_promote_and_roll_back(stack: Stack) -> None:
    require_dashboard_build()
    base = stack.management_url
    status, token = http_json(
        "POST",
        base + "/api/auth/token",
        {"username": stack.admin_username, "password": stack.admin_password},
    )
    assert status == 200, token
    headers = {"Authorization": "Bearer " + token["access_token"]}
    name = f"traffic-e2e-{uuid.uuid4().hex[:6]}"
    v1 = train(base, headers, name, "logistic_regression")
    train(base, headers, name, "logistic_regression")  # same inputs and classes: compatible
    status, created = http_json(
        "POST", f"{base}/api/export/{v1['model_id']}", {"version": 1}, headers
    )
    assert status == 201, created
    api_id = created["api"]["id"]
    status, model = http_json("GET", f"{base}/api/models/{v1['model_id']}", None, headers)
    key = {v["number"]: v["id"] for v in model["versions"]}
    store_split_events(stack, api_id, key[1], key[2])

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
            panel = tid(page, "traffic-panel")
            expect(panel).to_be_visible()
            current = tid(page, "traffic-current")
            expect(current).to_contain_text("Tout le trafic va à la version en service v1")
            expect(tid(page, "traffic-promote")).to_have_count(0)
            expect(tid(page, "traffic-rollback")).to_have_count(0)

            # A 10 % canary of v2.
            expect(tid(page, "traffic-version")).to_have_value("2")
            tid(page, "traffic-mode-canary").check()
            tid(page, "traffic-weight").fill("10")
            expect(tid(page, "traffic-weight-slider")).to_have_value("10")
            tid(page, "traffic-start").click()
            expect(current).to_contain_text("Canari : v2 répond à 10 % des requêtes")
            status, shown = http_json("GET", f"{base}/api/exports/{api_id}", None, headers)
            assert status == 200 and shown["traffic"]["mode"] == "canary", shown
            assert shown["traffic"]["weight_percent"] == 10 and shown["version_number"] == 1

            # The figures per version and the shadow agreement (events stored above).
            figures = tid(page, "traffic-figures")
            expect(tid(page, "traffic-row-1")).to_contain_text("20")
            expect(tid(page, "traffic-row-1")).to_contain_text("en service")
            expect(tid(page, "traffic-row-2")).to_contain_text("canari")
            expect(tid(page, "traffic-shadow-row-2")).to_contain_text("4")
            expect(tid(page, "traffic-agreement-2")).to_contain_text("75 %")
            expect(tid(page, "traffic-agreement-2")).to_contain_text("3 sur 4")
            panel.scroll_into_view_if_needed()
            expect(figures).to_be_visible()
            shots.take("canary", full_page=True)

            # Promote, confirmed: v2 serves, v1 is remembered.
            tid(page, "traffic-promote").click()
            expect(tid(page, "confirm-dialog")).to_contain_text("Mettre v2 en service")
            shots.take("promote-confirm", full_page=False)
            tid(page, "confirm-ok").click()
            expect(tid(page, "confirm-dialog")).to_be_hidden()
            expect(current).to_contain_text("Tout le trafic va à la version en service v2")
            expect(current).to_contain_text("Version précédente : v1")
            status, shown = http_json("GET", f"{base}/api/exports/{api_id}", None, headers)
            assert shown["version_number"] == 2 and shown["traffic"] is None, shown
            assert shown["previous_version_number"] == 1

            # Roll back, confirmed: v1 serves again and there is nothing left to roll back.
            tid(page, "traffic-rollback").click()
            expect(tid(page, "confirm-dialog")).to_contain_text("Revenir à v1")
            tid(page, "confirm-ok").click()
            expect(tid(page, "confirm-dialog")).to_be_hidden()
            expect(current).to_contain_text("Tout le trafic va à la version en service v1")
            expect(tid(page, "traffic-notice")).to_contain_text("Retour arrière effectué")
            expect(tid(page, "traffic-rollback")).to_have_count(0)
            status, shown = http_json("GET", f"{base}/api/exports/{api_id}", None, headers)
            assert shown["version_number"] == 1 and shown["previous_version_number"] is None
            shots.take("rolled-back", full_page=True)
        finally:
            context.close()
