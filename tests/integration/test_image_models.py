"""Image models in the management API (issue 14): the built-in digits get their image spec at
training (8x8, 0..16, ink high, whole numbers), carried to the version, the API record ingress
reads and the API's docs (a curl with a file, a base64 JSON example drawn from the example row);
a CSV training or an upload declares images of W x H, refused with a clear 400 when W x H is not
the number of features."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
from aiohttp import FormData
from PIL import Image

from management_api.keys import EXPORTS
from tests.management_support import Api

DIGITS_IMAGE = {
    "width": 8,
    "height": 8,
    "min_value": 0.0,
    "max_value": 16.0,
    "ink": "high",
    "margin": 0.0,
    "integers": True,
}


def pixels_csv(rows: int = 60, side: int = 4, seed: int = 0) -> bytes:
    """``side`` x ``side`` images of a bar (vertical: "v", horizontal: "h"), 0..255 ink high."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(rows):
        image = np.zeros((side, side), dtype=int)
        where = int(rng.integers(0, side))
        label = "v" if i % 2 else "h"
        if label == "v":
            image[:, where] = 255
        else:
            image[where, :] = 255
        records.append([*image.ravel().tolist(), label])
    columns = [f"p{r}_{c}" for r in range(side) for c in range(side)] + ["shape"]
    out = io.StringIO()
    pd.DataFrame(records, columns=columns).to_csv(out, index=False)
    return out.getvalue().encode()


async def test_digits_get_their_image_spec_and_the_api_docs_show_a_file_curl(api: Api) -> None:
    owner = await api.new_user("painter")
    job = await api.train_builtin(owner, "digits", dataset="digits")
    assert job["status"] == "succeeded", job
    status, model = await api.call("GET", f"/api/models/{job['model_id']}", owner)
    assert status == 200, model
    assert model["versions"][0]["image"] == DIGITS_IMAGE

    created = await api.export(owner, model["id"], name="digits api")
    status, docs = await api.call("GET", f"/api/exports/{created['api']['id']}/docs", owner)
    assert status == 200, docs
    assert docs["image"] == DIGITS_IMAGE
    assert "-F image=@digit.png" in docs["curl"] and "base64" in docs["curl"]
    png = base64.b64decode(docs["image_example_request"]["image"])
    assert Image.open(io.BytesIO(png)).format == "PNG"
    assert any(e["code"] == "INVALID_IMAGE" for e in docs["errors"])

    # The registry snapshot ingress reads carries the spec (it decides whether images are taken).
    records = await api.client.app[EXPORTS].records()
    (record,) = [r for r in records if r.api_id == created["api"]["id"]]
    assert record.image is not None and record.image.model_dump(mode="json") == DIGITS_IMAGE


async def test_a_csv_training_declares_images_and_a_wrong_size_is_a_clear_400(api: Api) -> None:
    owner = await api.new_user("csvpainter")
    csv = pixels_csv()
    image = {"width": 4, "height": 4, "min_value": 0, "max_value": 255}
    form = FormData()
    form.add_field("file", csv, filename="bars.csv", content_type="text/csv")
    for key, value in {
        "name": "bars-wrong",
        "target": "shape",
        "algorithm": "logistic_regression",
        "image": json.dumps({**image, "width": 5}),
    }.items():
        form.add_field(key, value)
    status, body = await api.call("POST", "/api/models/train", owner, data=form)
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_INPUT"
    assert body["error"]["details"]["pixels"] == 20 and body["error"]["details"]["n_features"] == 16

    job = await api.train_csv(
        owner, "bars", csv, "shape", algorithm="logistic_regression", image=json.dumps(image)
    )
    assert job["status"] == "succeeded", job
    status, model = await api.call("GET", f"/api/models/{job['model_id']}", owner)
    assert status == 200, model
    declared = model["versions"][0]["image"]
    assert (declared["width"], declared["height"], declared["max_value"]) == (4, 4, 255.0)
    assert declared["integers"] is True  # the CSV's pixel columns are whole numbers


async def test_an_upload_declaring_images_of_the_wrong_size_is_a_clear_400(api: Api) -> None:
    owner = await api.new_user("uploader")
    form = FormData()
    form.add_field("file", b"PK\x03\x04not-read", filename="model.skops")
    form.add_field("name", "pixels")
    form.add_field("task", "classification")
    form.add_field("classes", json.dumps(["a", "b"]))
    features = [{"name": f"p{i}", "type": "number"} for i in range(64)]
    form.add_field("features", json.dumps(features))
    form.add_field("image", json.dumps({"width": 8, "height": 7}))
    status, body = await api.call("POST", "/api/models/upload", owner, data=form)
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_INPUT"
    assert body["error"]["details"] == {
        "field": "image",
        "width": 8,
        "height": 7,
        "pixels": 56,
        "n_features": 64,
    }, body
