"""An attacker's pass over the inputs of issues 14 and 15, against a real ingress: Open Inference
Protocol bodies that lie about their sizes, shapes and types, and images that cost far more than
their bytes. Each is a clear 4xx JSON error, publishes nothing, and ingress keeps answering.
(Feedback's are in ``test_feedback.py``, beside its consumer and ClickHouse.)"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import aiohttp
import orjson
import pytest
from PIL import Image

from tests.integration.test_image_api import add_digits_api, drawn, form
from tests.prediction_fixtures import IRIS_FEATURES, IRIS_ROW, PredictionWorld

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IRIS_VALUES = [IRIS_ROW[n] for n in IRIS_FEATURES]


def tensor(**kw: Any) -> dict[str, Any]:
    return {"name": "input", "datatype": "FP64", "shape": [1, 4], "data": IRIS_VALUES, **kw}


def binary(inputs: list[dict[str, Any]], data: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps({"inputs": inputs})
    headers = {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }
    return head + data, headers


def nested(depth: int) -> Any:
    data: Any = 1.0
    for _ in range(depth):
        data = [data]
    return data


def hostile_oip_bodies() -> list[tuple[str, bytes, dict[str, str], str]]:
    """(case, body, headers, words the error must hold)."""
    fp64 = {"name": "input", "datatype": "FP64", "shape": [1, 4]}
    four = struct.pack("<4d", *IRIS_VALUES)
    cases: list[tuple[str, bytes, dict[str, str], str]] = []

    def add(case: str, body: Any, words: str, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        cases.append((case, raw, headers or {"Content-Type": "application/json"}, words))

    def add_binary(case: str, request: tuple[bytes, dict[str, str]], words: str) -> None:
        add(case, request[0], words, request[1])

    body, headers = binary([{**fp64, "parameters": {"binary_data_size": 32}}], four)
    for value in ("99999999", "-1", "abc", str(len(body) + 1)):
        add(
            f"header length {value}",
            body,
            "Inference-Header-Content-Length",
            {**headers, "Inference-Header-Content-Length": value},
        )
    add(
        "header length short",
        body,
        "not valid JSON",
        {**headers, "Inference-Header-Content-Length": "10"},
    )
    add_binary(
        "binary size past the body",
        binary([{**fp64, "parameters": {"binary_data_size": 2**40}}], four),
        "does not match",
    )
    add_binary(
        "binary size against the shape",
        binary([{**fp64, "parameters": {"binary_data_size": 16}}], four),
        "(32 bytes)",
    )
    add_binary(
        "bytes no input claims",
        binary([{**fp64, "parameters": {"binary_data_size": 32}}], four + b"extra"),
        "not claimed",
    )
    add_binary(
        "binary size not an int",
        binary([{**fp64, "parameters": {"binary_data_size": "32"}}], four),
        "does not match",
    )
    bytes_in = {"name": "input", "datatype": "BYTES", "shape": [1, 4]}
    add_binary(
        "BYTES length prefix lies",
        binary(
            [{**bytes_in, "parameters": {"binary_data_size": 8}}],
            struct.pack("<I", 2**31) + b"abcd",
        ),
        "truncated",
    )
    add("huge shape", {"inputs": [tensor(shape=[2**31, 2**31])]}, "at most 100 rows")
    add("huge inner shape", {"inputs": [tensor(shape=[1, 2**62])]}, "more than the 400")
    add("negative dims", {"inputs": [tensor(shape=[-1, 4])]}, "needs a shape")
    add("data past its shape", {"inputs": [tensor(data=[0.5] * 50_000)]}, "more than 4")
    add("datatype against data", {"inputs": [tensor(datatype="INT64")]}, "element 0 is a number")
    add("BOOL datatype against data", {"inputs": [tensor(datatype="BOOL")]}, "BOOL")
    add("nested deeper than 8", {"inputs": [tensor(shape=[1], data=nested(20))]}, "nested deeper")
    add(
        "nested past the JSON parser",
        b'{"inputs": [' + b"[" * 2000 + b"]" * 2000 + b"]}",
        "not valid JSON",
    )
    add("1001 inputs", {"inputs": [tensor(name=f"i{n}") for n in range(1001)]}, "at most 1000")
    add(
        "unknown input names", {"inputs": [tensor(name="a"), tensor(name="b")]}, "unexpected inputs"
    )
    add("duplicate input names", {"inputs": [tensor(), tensor()]}, "same name")
    add(
        "unknown output", {"inputs": [tensor()], "outputs": [{"name": "secrets"}]}, "unknown output"
    )
    add("outputs not a list", {"inputs": [tensor()], "outputs": {"name": "label"}}, "outputs")
    add("id not a string", {"id": {"x": 1}, "inputs": [tensor()]}, '"id"')
    add("inputs an object", {"inputs": {"name": "input"}}, "non-empty list")
    add_binary(
        "NaN in binary FP64",
        binary(
            [{**fp64, "parameters": {"binary_data_size": 32}}],
            struct.pack("<4d", float("nan"), 1, 1, 1),
        ),
        "mistyped: sepal_length",
    )
    return cases


async def test_hostile_oip_bodies_are_400_json_publish_nothing_and_ingress_keeps_answering(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    await start_worker()
    ingress = await start_ingress()
    url, key = f"{ingress.url}/v2/models/iris/infer", {"X-API-Key": world.keys["iris"]}
    async with aiohttp.ClientSession() as http:
        before = ingress.batches_sent
        for case, body, headers, words in hostile_oip_bodies():
            async with http.post(url, data=body, headers={**key, **headers}) as response:
                answer = await response.json()
                assert response.status == 400, (case, answer)
                assert response.content_type == "application/json", case
            assert set(answer) == {"error", "code", "details"}, (case, answer)
            assert words in answer["error"], (case, answer)
        # Odd parameters are ignored, not trusted: a string binary_data_output answers JSON.
        weird = {
            "inputs": [tensor(parameters={"x": [1]})],
            "parameters": {"binary_data_output": "yes"},
        }
        assert ingress.batches_sent == before, "a refused body must publish nothing"
        async with http.post(url, json=weird, headers=key) as response:
            assert response.status == 200, await response.text()
            answer = await response.json()
        assert [o["name"] for o in answer["outputs"]] == ["label", "probabilities"]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


async def test_images_that_cost_far_more_than_their_bytes_are_refused_before_decoding(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    add_digits_api(world)
    await start_worker()
    ingress = await start_ingress()
    url, key = f"{ingress.url}/api/predict/digits", {"X-API-Key": world.keys["digits"]}
    png = drawn("0")
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(jpeg, "JPEG")
    raw_jpeg = jpeg.getvalue()
    app0_end = 4 + int.from_bytes(raw_jpeg[4:6], "big")
    tiny = io.BytesIO()
    Image.new("L", (1, 1), 255).save(tiny, "PNG")
    many = [{"image": base64.b64encode(tiny.getvalue()).decode()}] * 5000
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("5000 one-pixel images", {"json": {"instances": many}}, "too_many_images"),
        (
            "80,000 empty PNG chunks",
            {"data": form(png[:33] + png_chunk(b"teXt", b"") * 80_000 + png[33:])},
            "too_complex",
        ),
        (
            "a 0.5 MB run of JPEG fill bytes",
            {"data": form(raw_jpeg[:app0_end] + b"\xff" * 500_000 + raw_jpeg[app0_end:])},
            "too_complex",
        ),
        (
            "100,000 JPEG comments",
            {"data": form(raw_jpeg[:2] + b"\xff\xfe\x00\x02" * 100_000 + raw_jpeg[2:])},
            "too_complex",
        ),
    ]
    async with aiohttp.ClientSession() as http:
        before = ingress.batches_sent
        for case, kw, reason in cases:
            async with http.post(url, headers=key, **kw) as response:
                body = await response.json()
            assert response.status == 400, (case, body)
            assert body["error"]["code"] == "INVALID_IMAGE", (case, body)
            assert body["error"]["details"]["reason"] == reason, (case, body)
        assert ingress.batches_sent == before, "a refused image must publish nothing"
        async with http.post(url, headers=key, data=form(png)) as response:
            body = await response.json()
        assert response.status == 200 and body["prediction"] == "0", body


async def test_the_image_cap_is_the_ingress_instance_limit(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    """Images per request are capped by ``ingress_max_instances``, as rows are, not by a fixed
    100: with a limit of 2, three images are refused before any is decoded and two answer."""
    add_digits_api(world)
    await start_worker()
    ingress = await start_ingress(ingress_max_instances=2)
    url, key = f"{ingress.url}/api/predict/digits", {"X-API-Key": world.keys["digits"]}
    image = {"image": base64.b64encode(drawn("0")).decode()}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, headers=key, json={"instances": [image] * 3}) as response:
            body = await response.json()
        assert response.status == 400, body
        assert body["error"]["details"]["reason"] == "too_many_images", body
        assert body["error"]["details"]["max_images"] == 2, body
        async with http.post(url, headers=key, json={"instances": [image] * 2}) as response:
            body = await response.json()
        assert response.status == 200, body
        assert [p["prediction"] for p in body["predictions"]] == ["0", "0"], body
