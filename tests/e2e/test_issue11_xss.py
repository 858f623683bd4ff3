"""Issue 11's new pages fed hostile names, in real Chromium against the whole stack (H9's review).

A model uploaded with HTML in its name, feature names, category values and classes, a model
trained on a CSV whose column names, category values and target classes are HTML (two
incompatible versions), and an API named with HTML: the model page (evaluation, importance,
versions' APIs), the upload page pre-filled from a file holding such names, the API page and its
deploy dialog's diff, and the models and monitoring lists show them as text. Nothing executes
(no ``window.__xss``), no element gets an ``on*`` attribute or an ``<img src=x>``, and the strict
CSP reports no violation. A regenerated API key shown once is gone from the DOM and the browser's
storage once its dialog is closed.
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from playwright.sync_api import Page, expect
from sklearn.linear_model import LogisticRegression

from tests.e2e.dashboard_helpers import chromium_browser, http_json, require_dashboard_build
from tests.stack import Stack

pytestmark = pytest.mark.timeout(300)

UI_TIMEOUT_MS = 20_000
IMG = '<img src=x onerror="window.__xss=1">'
SVG = '"><svg onload="window.__xss=2">'
SCRIPT = "<script>window.__xss=3</script>"

WATCH = """
window.__xss = 0; window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.sample || '')));
"""
PROBE = """() => ({
  xss: window.__xss,
  csp: window.__csp,
  img: document.querySelectorAll('img[src="x"]').length,
  handlers: [...document.querySelectorAll('*')]
    .filter(el => [...el.attributes].some(a => a.name.toLowerCase().startsWith('on')))
    .map(el => el.outerHTML.slice(0, 120)),
})"""
FIND = """(secret) => {
  const hits = [];
  if (document.documentElement.outerHTML.includes(secret)) hits.push('html');
  for (const el of document.querySelectorAll('input, textarea'))
    if ((el.value || '').includes(secret)) hits.push('input');
  for (const store of [localStorage, sessionStorage])
    for (let i = 0; i < store.length; i++)
      if ((store.getItem(store.key(i)) || '').includes(secret)) hits.push('storage');
  return hits;
}"""


def tid(page: Page, test_id: str) -> Any:
    return page.get_by_test_id(test_id)


def multipart(url: str, fields: dict[str, str], file: bytes, auth: dict[str, str]) -> Any:
    """A multipart POST (the file in field ``file``); the decoded JSON answer."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, value in fields.items():
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        )
        body.write(value.encode() + b"\r\n")
    body.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    body.write(file + f"\r\n--{boundary}--\r\n".encode())
    request = urllib.request.Request(url, data=body.getvalue(), method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    for key, value in auth.items():
        request.add_header(key, value)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def hostile_model() -> LogisticRegression:
    """A fitted classifier whose file names HTML features and classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    model = LogisticRegression().fit(x, np.where(x[:, 0] > 0, SCRIPT, "plain"))
    model.feature_names_in_ = np.array([IMG, SVG], dtype=object)
    return model


def hostile_csv(columns: list[str], rows: int, seed: int) -> bytes:
    """CSV columns named with HTML, categories and target classes that are HTML."""
    rng = np.random.default_rng(seed)
    lines = [",".join([*columns, "label"])]
    for i in range(rows):
        values = [str(i % 7)] + [str(rng.choice(["<b>x</b>", "plain"]))] * (len(columns) - 1)
        lines.append(",".join([*values, str(rng.choice(["<i>yes</i>", "<img src=x>"]))]))
    return ("\n".join(lines) + "\n").encode()


def train_csv(base: str, auth: dict[str, str], name: str, csv: bytes) -> dict[str, Any]:
    fields = {"name": name, "target": "label", "algorithm": "logistic_regression"}
    job = multipart(base + "/api/models/train", fields, csv, auth)
    deadline = time.monotonic() + 180
    while job["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
        _, job = http_json("GET", f"{base}/api/training-jobs/{job['id']}", None, auth)
    assert job["status"] == "succeeded", job
    return dict(job)


def assert_inert(page: Page, where: str) -> None:
    page.wait_for_timeout(800)  # charts and lazy parts render after the data arrives
    found = page.evaluate(PROBE)
    assert found == {"xss": 0, "csp": [], "img": 0, "handlers": []}, (where, found)


def test_hostile_names_render_as_text_and_a_shown_key_leaves_no_trace(
    stack: Stack, tmp_path: Path
) -> None:
    require_dashboard_build()
    base = stack.management_url
    status, token = http_json(
        "POST",
        base + "/api/auth/token",
        {"username": stack.admin_username, "password": stack.admin_password},
    )
    assert status == 200, token
    admin = {"Authorization": "Bearer " + token["access_token"]}
    username, password = f"xss-{uuid.uuid4().hex[:6]}", "xss-password-1234"
    status, body = http_json(
        "POST", base + "/api/users", {"username": username, "password": password}, admin
    )
    assert status == 201, body
    _, body = http_json(
        "POST", base + "/api/auth/token", {"username": username, "password": password}
    )
    auth = {"Authorization": "Bearer " + body["access_token"]}

    data = sio.dumps(hostile_model())
    features = [
        {"name": IMG, "type": "number"},
        {"name": SVG, "type": "category", "categories": [IMG, SVG, "ok"]},
    ]
    upload_fields = {
        "name": IMG,
        "task": "classification",
        "features": json.dumps(features),
        "classes": json.dumps([SCRIPT, "plain"]),
    }
    uploaded = multipart(base + "/api/models/upload", upload_fields, data, auth)
    skops_file = tmp_path / "hostile.skops"
    skops_file.write_bytes(data)

    columns = ["num<img src=x onerror='window.__xss=4'>", "cat<svg onload='window.__xss=5'>"]
    name = SVG + uuid.uuid4().hex[:4]
    trained = train_csv(base, auth, name, hostile_csv(columns, 120, 0))
    train_csv(base, auth, name, hostile_csv(["other<img src=x>"], 80, 1))  # v2: other inputs
    status, created = http_json(
        "POST",
        f"{base}/api/export/{trained['model_id']}",
        {"name": IMG, "version": 2},
        auth,
    )
    assert status == 201, created
    api_id = created["api"]["id"]

    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
        context.set_default_timeout(UI_TIMEOUT_MS)
        context.add_init_script(WATCH)
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        try:
            page.goto(base + "/login")
            tid(page, "login-username").fill(username)
            tid(page, "login-password").fill(password)
            tid(page, "login-submit").click()
            expect(tid(page, "models-page")).to_contain_text(IMG)
            assert_inert(page, "models list")

            page.goto(f"{base}/models/{uploaded['id']}")
            expect(tid(page, "model-detail")).to_contain_text(IMG)
            assert_inert(page, "uploaded model page")

            page.goto(f"{base}/models/{trained['model_id']}")
            expect(tid(page, "model-detail")).to_be_visible()
            tid(page, "version-select").select_option("1")
            expect(tid(page, "confusion-matrix")).to_contain_text("<i>yes</i>")
            expect(tid(page, "importance")).to_be_visible()
            assert_inert(page, "CSV model page")

            page.goto(base + "/models/upload")
            tid(page, "upload-file").set_input_files(str(skops_file))
            expect(tid(page, "upload-feature-name-0")).to_have_value(IMG, timeout=60_000)
            assert_inert(page, "upload page pre-filled")

            page.goto(f"{base}/monitoring/{api_id}")
            expect(tid(page, "api-detail")).to_contain_text(IMG)
            tid(page, "deploy-button").click()
            tid(page, "deploy-version-select").select_option("1")
            expect(tid(page, "deploy-diff")).to_contain_text(columns[0])
            expect(tid(page, "deploy-diff")).to_contain_text("<img src=x>")
            assert_inert(page, "deploy dialog")
            page.keyboard.press("Escape")

            page.goto(base + "/monitoring")
            expect(page.get_by_text(IMG).first).to_be_visible()
            assert_inert(page, "monitoring list")

            # A key shown once: gone from the DOM and storage once its dialog is closed.
            page.goto(f"{base}/monitoring/{api_id}")
            tid(page, "regenerate-key-button").click()
            tid(page, "confirm-ok").click()
            shown = tid(page, "new-api-key").input_value()
            assert re.fullmatch(r"mg_[A-Za-z0-9_-]{20,}", shown), shown
            tid(page, "new-key-close").click()
            expect(tid(page, "new-key-modal")).to_have_count(0)
            assert page.evaluate(FIND, shown) == []
            assert page.evaluate(FIND, password) == []
            assert dialogs == []
        finally:
            context.close()
