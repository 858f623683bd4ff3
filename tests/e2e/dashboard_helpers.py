"""Browser plumbing for the dashboard test: Debian's chromium, screenshots, HTTP calls.

Playwright drives the system `chromium` (installed by the set-up); no browser is ever downloaded.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

# Assertions wait up to 15 s (Playwright's default is 5 s): on a busy 2-core machine a page whose
# data comes from ClickHouse or a training job is right, only late (seen in clean-clone runs).
expect.set_options(timeout=15_000)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
STATIC_INDEX = REPO / "management_api" / "static" / "index.html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def require_dashboard_build() -> None:
    if not STATIC_INDEX.is_file():
        pytest.fail(
            f"the dashboard is not built ({STATIC_INDEX} is missing): run `make bootstrap`, "
            "or `npm ci && npm run build` in dashboard/"
        )


@contextmanager
def chromium_browser() -> Iterator[Browser]:
    """Debian's chromium under Playwright; fails with how to install it when it is missing."""
    executable = CHROMIUM if CHROMIUM.exists() else None
    if executable is None:
        found = shutil.which("chromium")
        executable = Path(found) if found else None
    if executable is None:
        pytest.fail(
            "chromium is not installed: `apt-get install -y chromium` (the set-up does it); "
            "never `playwright install`"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Screenshots:
    """Saves each page at desktop (1280x800) and phone (390x844) width."""

    def __init__(self, page: Page, directory: Path = SCREENSHOTS) -> None:
        self.page = page
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.png"):
            old.unlink()
        self.saved: list[Path] = []

    def take(self, name: str, full_page: bool = True) -> None:
        """Pages are shot whole; dialogs (``full_page=False``) as the screen shows them."""
        index = len(self.saved) // 2 + 1
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.wait_for_timeout(400)  # charts re-measure their container on resize
            path = self.directory / f"{index:02d}-{name}-{label}.png"
            self.page.screenshot(path=str(path), full_page=full_page)
            self.saved.append(path)
        self.page.set_viewport_size(DESKTOP)
        self.page.wait_for_timeout(200)


def http_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One HTTP call from the test (not the browser); returns status and decoded JSON (or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        raw = err.read()
        status = err.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_until(
    what: str, check: Callable[[], bool], timeout_s: float, every: Callable[[], None] | None = None
) -> None:
    """Polls ``check`` (calling ``every`` between tries) until true; fails naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        if every is not None:
            every()
        time.sleep(0.5)


def press(button: Locator, tries: int = 5) -> None:
    """Clicks a choice button (a range: choosing it again keeps it chosen) until it reports
    ``aria-pressed="true"``. Not for an on/off toggle, which a second click would turn off.

    Playwright clicks at the coordinates it measured; a page whose data arrives between that
    measure and the click moves the button, and the click lands elsewhere (seen once in CI on the
    monitoring page's range switch). The click is repeated, never more than ``tries`` times.
    """
    for _ in range(tries - 1):
        button.click()
        try:
            expect(button).to_have_attribute("aria-pressed", "true", timeout=3_000)
            return
        except AssertionError:
            continue
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
