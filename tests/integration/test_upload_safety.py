# ruff: noqa: F811
"""Model uploads cannot run code or exhaust management-api (issue 9, item 1): crafted files are
refused before anything in them runs, archives are bounded before expansion and opened only in a
child process with memory and CPU limits, and predictors load only what was verified."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import skops.io as sio
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from infra.model_store import (
    HASH_KEY,
    METADATA_FILE,
    MODEL_FILE,
    ModelStore,
    UnverifiedModelError,
)
from management_api.app import create_app
from tests.management_support import Api, api, clickhouse_db, management_settings  # noqa: F401
from tests.unit.test_model_store import (
    crafted_runstring_file,
    upload_pipeline,
    zip_bomb,
)

FEATURES = json.dumps(
    [
        {"name": "size", "type": "number"},
        {"name": "color", "type": "category", "categories": ["red", "blue"]},
        {"name": "rest", "type": "number"},
    ]
)


def upload_form(data: bytes, name: str = "uploaded") -> FormData:
    form = FormData()
    form.add_field("file", data, filename="model.skops")
    form.add_field("name", name)
    form.add_field("task", "classification")
    form.add_field("features", FEATURES)
    form.add_field("classes", '["0", "1"]')
    return form


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def nested_lists_bomb(n_lists: int) -> bytes:
    """A zip within every archive limit whose schema.json (``[[],[],…]``, a few hundred KiB
    deflated) parses into tens of millions of objects: only the child's memory limit stops it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("schema.json", "w") as entry:
            entry.write(b"[")
            chunk = b"[]," * 1_000_000
            for _ in range(n_lists // 1_000_000):
                entry.write(chunk)
            entry.write(b"[]]")
    return out.getvalue()


async def test_a_crafted_upload_is_refused_and_its_code_never_runs(
    api: Api, tmp_path: Path
) -> None:
    """The file that calls ``runstring`` (it runs under the old prefix trust, see the unit test)
    gets 400 UNTRUSTED_MODEL naming the function, the marker file is absent, nothing is saved."""
    owner = await api.new_user("attacker")
    marker = tmp_path / "marker"
    status, body = await api.call(
        "POST", "/api/models/upload", owner, data=upload_form(crafted_runstring_file(marker))
    )
    assert status == 400, body
    assert body["error"]["code"] == "UNTRUSTED_MODEL"
    assert any("runstring" in t for t in body["error"]["details"]["untrusted_types"])
    assert not marker.exists()
    status, models = await api.call("GET", "/api/models", owner)
    assert models["items"] == []
    assert not any(p.name == MODEL_FILE for p in api.settings.model_store.rglob("*"))


async def test_a_zip_bomb_is_refused_from_its_central_directory_with_memory_bounded(
    api: Api,
) -> None:
    """A sub-MiB upload declaring a 256 MiB schema.json gets 413 MODEL_ARCHIVE_TOO_LARGE and
    this process (management-api runs in it) grows by far less than the bomb's size."""
    owner = await api.new_user("bomber")
    bomb = zip_bomb(256 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    before = rss()
    status, body = await api.call("POST", "/api/models/upload", owner, data=upload_form(bomb))
    grown = rss() - before
    assert status == 413, body
    assert body["error"]["code"] == "MODEL_ARCHIVE_TOO_LARGE"
    assert body["error"]["details"]["schema_bytes"] == 256 * 1024 * 1024
    assert grown < 64 * 1024 * 1024, f"management-api grew by {grown / 2**20:.0f} MiB"


async def test_a_bomb_within_the_archive_limits_is_stopped_by_the_childs_memory_limit(
    api: Api,
) -> None:
    """A 100 MB schema of empty lists (small on the wire, within the archive limits) would take
    gigabytes once parsed: the child hits its RLIMIT_AS, the answer is 413 MODEL_TOO_COSTLY, and
    this process does not grow."""
    owner = await api.new_user("bomber2")
    bomb = nested_lists_bomb(33_000_000)
    assert len(bomb) < 1024 * 1024
    before = rss()
    status, body = await api.call("POST", "/api/models/upload", owner, data=upload_form(bomb))
    grown = rss() - before
    assert status == 413, body
    assert body["error"]["code"] == "MODEL_TOO_COSTLY"
    assert body["error"]["details"]["limit"] == "memory"
    assert grown < 64 * 1024 * 1024, f"management-api grew by {grown / 2**20:.0f} MiB"


async def test_a_legitimate_pipeline_upload_is_stored_verified_and_a_swap_is_refused(
    api: Api,
) -> None:
    """imputer + scaler + one-hot + ColumnTransformer + LogisticRegression: 201, stored with the
    hash of the uploaded bytes, loadable by a predictor's store; the same entry with its file
    swapped afterwards is refused."""
    owner = await api.new_user("uploader")
    data = sio.dumps(upload_pipeline())
    status, body = await api.call("POST", "/api/models/upload", owner, data=upload_form(data))
    assert status == 201, body
    version_id = body["versions"][0]["id"]
    assert body["versions"][0]["algorithm"] == "Pipeline"
    store = ModelStore(api.settings.model_store)
    assert (store.path_of(version_id) / MODEL_FILE).read_bytes() == data
    assert len(store.metadata(version_id)[HASH_KEY]) == 64
    loaded = store.load(version_id)
    row = pd.DataFrame({"size": [1.0], "color": ["red"], "rest": [0.5]})
    assert list(loaded.estimator.predict(row)) in ([0], [1])

    swapped = sio.dumps(upload_pipeline().set_params(model__C=0.5))
    (store.path_of(version_id) / MODEL_FILE).write_bytes(swapped)
    with pytest.raises(UnverifiedModelError):
        store.load(version_id)


async def test_entries_of_an_earlier_run_are_verified_at_start_or_refused(
    tmp_path: Path,
    rabbitmq_url: str,
    namespace: str,
    amqp: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Store entries without a recorded hash (saved before this check existed): at start
    management-api verifies each like an upload, records the hash of a good one, and logs and
    leaves unverified (so predictors refuse it) a crafted one, whose code never runs."""
    settings = management_settings(tmp_path, namespace=namespace, rabbitmq_url=rabbitmq_url)
    marker = tmp_path / "marker"
    for version_id, data in (
        ("old-good", sio.dumps(upload_pipeline())),
        ("old-evil", crafted_runstring_file(marker)),
    ):
        folder = settings.model_store / version_id
        folder.mkdir(parents=True)
        (folder / MODEL_FILE).write_bytes(data)
        (folder / METADATA_FILE).write_text('{"task": "classification"}')
    caplog.set_level(logging.INFO, logger="management_api.catalog")
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    await client.close()
    store = ModelStore(settings.model_store)
    assert store.unverified() == ["old-evil"]
    assert store.load("old-good").metadata["task"] == "classification"
    with pytest.raises(UnverifiedModelError):
        store.load("old-evil")
    assert not marker.exists()
    assert any("old-evil" in r.getMessage() and "refuse" in r.getMessage() for r in caplog.records)
