"""Image inputs through ingress (issue 14): a digit drawn at test time, dark on light, is classified
by a digits API sent as JSON base64, as a multipart file and as a raw PNG; hostile images (a
decompression bomb, other formats named .png, truncated bytes, an image to a features API) are
400 INVALID_IMAGE with nothing published, and ingress keeps answering. Digits used: 0 and 7,
which the built-in logistic regression classifies with 0.95+ whatever the pen (a thin "1" reads
as a 3: sklearn's ones are wide strokes)."""

from __future__ import annotations

import base64
import functools
import io
import struct
import zlib
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from schemas import ApiRecord, FeatureSpec, FeatureType, ImageSpec, Task
from tests.prediction_fixtures import IRIS_ROW, PredictionWorld, _record, collect_request_events

NAMES = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
DIGITS_IMAGE = ImageSpec(width=8, height=8, min_value=0, max_value=16, integers=True)


@functools.cache
def digits_model() -> Pipeline:
    """The built-in digits model as the management API trains it (fitted once per session)."""
    data = load_digits()
    frame = pd.DataFrame(data.data.astype("int64"), columns=NAMES)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    return model.fit(frame, [str(t) for t in data.target])


def add_digits_api(world: PredictionWorld) -> None:
    """The digits model in the store and an API declaring its images."""
    world.store.save("digits-v1", digits_model(), {"task": "classification", "features": NAMES})
    features = [FeatureSpec(name=n, type=FeatureType.INTEGER) for n in NAMES]
    record: ApiRecord
    record, key = _record(
        "digits",
        "digits-v1",
        Task.CLASSIFICATION,
        features,
        classes=[str(d) for d in range(10)],
        image=DIGITS_IMAGE,
    )
    world.records["digits"], world.keys["digits"] = record, key


def drawn(digit: str, size: int = 64, fmt: str = "PNG") -> bytes:
    """A digit drawn with a 6 px pen, dark on light, as sklearn never saw it."""
    image = Image.new("RGB", (size, size), (250, 250, 245))
    pen = ImageDraw.Draw(image)
    s, ink = size, (20, 20, 30)
    if digit == "0":
        pen.ellipse((s * 0.3, s * 0.15, s * 0.7, s * 0.85), outline=ink, width=6)
    else:  # "7"
        pen.line((s * 0.3, s * 0.15, s * 0.7, s * 0.15), fill=ink, width=6)
        pen.line((s * 0.7, s * 0.15, s * 0.42, s * 0.85), fill=ink, width=6)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 200_000, 9)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def icc_bomb() -> bytes:
    """A 0.5 MB PNG whose 500 iCCP chunks inflate to 1 MB each while its header is read (2 s of
    CPU unchecked)."""
    png = drawn("0")
    data = b"icc\x00\x00" + zlib.compress(b"\x00" * 1_000_000, 9)
    chunk = struct.pack(">I", len(data)) + b"iCCP" + data
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + data))
    return png[:33] + chunk * 500 + png[33:]


async def call(
    http: aiohttp.ClientSession, url: str, key: str, **kw: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"X-API-Key": key, **kw.pop("headers", {})}
    async with http.post(url, headers=headers, **kw) as response:
        return response.status, await response.json()


def form(data: bytes, field: str = "image", filename: str = "digit.png") -> aiohttp.FormData:
    out = aiohttp.FormData()
    out.add_field(field, data, filename=filename, content_type="image/png")
    return out


async def test_a_drawn_digit_is_classified_from_json_base64_multipart_and_a_raw_png(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    add_digits_api(world)
    await start_worker()
    ingress = await start_ingress()
    url, key = f"{ingress.url}/api/predict/digits", world.keys["digits"]
    zero, seven = drawn("0"), drawn("7")
    async with aiohttp.ClientSession() as http:
        status, body = await call(http, url, key, json={"image": base64.b64encode(zero).decode()})
        assert status == 200, body
        assert body["prediction"] == "0" and body["probabilities"]["0"] > 0.9

        status, body = await call(http, url, key, data=form(seven))
        assert status == 200, body
        assert body["prediction"] == "7"

        data_url = "data:image/jpeg;base64," + base64.b64encode(drawn("7", 96, "JPEG")).decode()
        status, body = await call(
            http, url, key, json={"instances": [{"image": data_url}, {"image": data_url}]}
        )
        assert status == 200, body
        assert [p["prediction"] for p in body["predictions"]] == ["7", "7"]

        status, body = await call(http, url, key, data=zero, headers={"Content-Type": "image/png"})
        assert status == 200, body
        assert body["prediction"] == "0"

        # Rows of plain features keep working on the same API.
        row = dict(zip(NAMES, load_digits().data[0].astype(int).tolist(), strict=True))
        status, body = await call(http, url, key, json=row)
        assert status == 200 and body["prediction"] == "0", body

    events = await collect_request_events(world.topology, 5)
    assert [e["status_code"] for e in events] == [200] * 5
    first = events[0]["input"]
    assert '"pixel_0_0"' in first and base64.b64encode(zero).decode()[:40] not in first
    assert all("PNG" not in e["input"] for e in events)  # features recorded, never image bytes


async def test_hostile_images_are_400_with_nothing_published_and_ingress_keeps_answering(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    add_digits_api(world)
    await start_worker()
    ingress = await start_ingress()
    url, key = f"{ingress.url}/api/predict/digits", world.keys["digits"]
    rgb = Image.new("RGB", (32, 32), "white")
    ImageDraw.Draw(rgb).line((16, 4, 16, 28), fill="black", width=4)

    def encoded(fmt: str) -> bytes:
        out = io.BytesIO()
        rgb.save(out, fmt)
        return out.getvalue()

    bomb = bomb_png(60_000, 60_000)  # 3.6 GP declared in a few hundred bytes
    assert len(bomb) < 2_000
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("bomb as multipart", {"data": form(bomb)}, "too_many_pixels"),
        ("bomb as base64", {"json": {"image": base64.b64encode(bomb).decode()}}, ""),
        ("GIF named .png", {"data": form(encoded("GIF"))}, "unsupported_format"),
        ("BMP named .png", {"data": form(encoded("BMP"))}, "unsupported_format"),
        ("TIFF named .png", {"data": form(encoded("TIFF"))}, "unsupported_format"),
        ("truncated PNG", {"data": form(drawn("0")[:300])}, "undecodable"),
        ("500 inflating ICC profiles", {"data": form(icc_bomb())}, "too_complex"),
        ("no image field", {"data": form(drawn("0"), field="file")}, "no_image_field"),
        ("not base64", {"json": {"image": "%%% not base64 %%%"}}, "not_base64"),
    ]
    async with aiohttp.ClientSession() as http:
        before = ingress.batches_sent
        for name, kw, reason in cases:
            status, body = await call(http, url, key, **kw)
            assert status == 400, (name, body)
            assert body["error"]["code"] == "INVALID_IMAGE", (name, body)
            if reason:
                assert body["error"]["details"]["reason"] == reason, (name, body)
        iris = f"{ingress.url}/api/predict/iris"
        status, body = await call(http, iris, world.keys["iris"], data=form(drawn("0")))
        assert status == 400 and body["error"]["details"]["reason"] == "not_an_image_api", body
        image_json = {"image": base64.b64encode(drawn("0")).decode()}
        status, body = await call(http, iris, world.keys["iris"], json=image_json)
        assert status == 400 and body["error"]["code"] == "INVALID_IMAGE", body
        assert ingress.batches_sent == before, "a refused image must publish nothing"

        status, body = await call(http, url, key, data=form(drawn("0")))
        assert status == 200 and body["prediction"] == "0", body
        status, body = await call(http, iris, world.keys["iris"], json=IRIS_ROW)
        assert status == 200, body
    assert np.isfinite(body["probabilities"]["setosa"])
