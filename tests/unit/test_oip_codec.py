"""The Open Inference Protocol codec without a socket: tensors in every form the protocol allows
become the rows the JSON route would send, and what does not fit is a 400 naming the input."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from ingress.errors import IngressError
from ingress.oip import HEADER_LENGTH, InferCodec, model_metadata
from ingress.registry import ApiEntry
from schemas import ApiRecord, FeatureSpec, FeatureType, ImageSpec, Task

HOUSE = [
    FeatureSpec(name="size", type=FeatureType.NUMBER),
    FeatureSpec(name="rooms", type=FeatureType.INTEGER),
    FeatureSpec(name="color", type=FeatureType.CATEGORY, categories=["red", "blue"]),
    FeatureSpec(name="garden", type=FeatureType.BOOLEAN, required=False),
]


def entry(task: Task = Task.REGRESSION, **kw: Any) -> ApiEntry:
    record = ApiRecord(
        api_id="house",
        name="house",
        key_hash="00" * 32,
        key_prefix="mg_",
        version_key="house-v3",
        version_number=3,
        task=task,
        features=kw.pop("features", HOUSE),
        **kw,
    )
    return ApiEntry.of(record, 100)


def rows(body: dict[str, Any] | bytes, header: str | None = None, **kw: Any) -> list[list[Any]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return InferCodec(header, None, 100).rows(entry(**kw), raw)


def error(body: dict[str, Any], version: str | None = None) -> IngressError:
    with pytest.raises(IngressError) as caught:
        InferCodec(None, version, 100).rows(entry(), orjson.dumps(body))
    return caught.value


def test_one_input_per_feature_flat_or_nested_gives_the_json_routes_rows() -> None:
    body = {
        "inputs": [
            {"name": "size", "datatype": "FP64", "shape": [2, 1], "data": [[120.0], [50]]},
            {"name": "rooms", "datatype": "INT64", "shape": [2], "data": [3, 1]},
            {"name": "color", "datatype": "BYTES", "shape": [2], "data": ["red", "blue"]},
        ]
    }
    assert rows(body) == [[120.0, 3, "red", None], [50, 1, "blue", None]]


def test_one_matrix_in_feature_order_takes_booleans_as_0_1_and_binary_data() -> None:
    matrix = np.array([[120.0, 3, 0, 1], [50.0, 1, 1, 0]])
    # A numeric matrix cannot carry the category's text: an unknown category is the validator's.
    with pytest.raises(IngressError) as caught:
        rows(
            {
                "inputs": [
                    {"name": "x", "datatype": "FP64", "shape": [2, 4], "data": matrix.tolist()}
                ]
            }
        )
    assert caught.value.status == 400 and "color" in caught.value.message

    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "size",
                    "datatype": "FP32",
                    "shape": [2],
                    "parameters": {"binary_data_size": 8},
                },
                {"name": "rooms", "datatype": "INT64", "shape": [2], "data": [3, 1]},
                {
                    "name": "color",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": 15},
                },
                {"name": "garden", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            ]
        }
    )
    strings = struct.pack("<I", 3) + b"red" + struct.pack("<I", 4) + b"blue"
    body = head + np.array([1.5, 2.5], dtype="<f4").tobytes() + strings
    assert rows(body, str(len(head))) == [[1.5, 3, "red", True], [2.5, 1, "blue", False]]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]},
            400,
            "[N, 4]",
        ),
        (
            {"inputs": [{"name": "size", "datatype": "FP64", "shape": [2], "data": [1.0]}]},
            400,
            "holds 2",
        ),
        (
            {"inputs": [{"name": "size", "datatype": "FP64", "shape": [1], "data": ["a"]}]},
            400,
            "a string",
        ),
        (
            {"inputs": [{"name": "size", "datatype": "FP99", "shape": [1], "data": [1]}]},
            400,
            "FP99",
        ),
        (
            {"inputs": [{"name": "size", "datatype": "FP64", "shape": [1], "data": [1.0]}]},
            400,
            "rooms",
        ),
        ({"inputs": []}, 400, "non-empty"),
        (
            {"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]}] * 2},
            400,
            "same name",
        ),
        (
            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [0, 4], "data": []}]},
            400,
            "no rows",
        ),
    ],
)
def test_what_does_not_fit_is_a_400_that_says_why(
    body: dict[str, Any], status: int, words: str
) -> None:
    exc = error(body)
    assert exc.status == status and words in exc.message, exc.message


def test_another_version_than_the_served_one_is_404_and_the_served_one_answers() -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    exc = error(body, version="2")
    assert exc.status == 404 and "version 3" in exc.message
    codec = InferCodec(None, "3", 100)
    with pytest.raises(IngressError) as caught:  # past the version check: the category's turn
        codec.rows(entry(), orjson.dumps(body))
    assert caught.value.status == 400


def test_answers_name_outputs_echo_the_id_and_go_binary_when_asked() -> None:
    classifier = entry(Task.CLASSIFICATION, classes=["no", "yes"])
    out = {
        "predictions": [
            {"prediction": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
            {"prediction": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
        ]
    }
    codec = InferCodec(None, None, 100)
    codec.request_id = "abc"
    answer = orjson.loads(codec.answer(classifier, out, "rid", "house-v3"))
    assert answer["id"] == "abc" and answer["model_version"] == "3"
    label, probabilities = answer["outputs"]
    assert label == {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]}
    assert probabilities["shape"] == [2, 2] and probabilities["data"] == [0.25, 0.75, 0.5, 0.5]
    assert probabilities["parameters"]["classes"] == ["no", "yes"]

    codec = InferCodec(None, None, 100)
    codec.outputs, codec.binary_all = ["probabilities"], True
    raw = codec.answer(classifier, out, "rid", "house-v3")
    length = int(codec.headers[HEADER_LENGTH])
    (only,) = orjson.loads(raw[:length])["outputs"]
    assert only["parameters"]["binary_data_size"] == 32 and "data" not in only
    assert np.frombuffer(raw[length:], "<f8").tolist() == [0.25, 0.75, 0.5, 0.5]

    codec = InferCodec(None, None, 100)
    codec.binary_all, codec.binary = True, {"label": False}
    raw = codec.answer(classifier, out, "rid", "house-v3")
    label, probabilities = orjson.loads(raw[: int(codec.headers[HEADER_LENGTH])])["outputs"]
    assert label["data"] == ["yes", "no"] and "data" not in probabilities

    failed = {"predictions": [out["predictions"][0], {"error": {"message": "unseen"}}]}
    with pytest.raises(IngressError) as caught:
        InferCodec(None, None, 100).answer(classifier, failed, "rid", "house-v3")
    assert caught.value.status == 500 and "row 1: unseen" in caught.value.message


def test_metadata_lists_one_input_per_feature_with_its_datatype() -> None:
    metadata = model_metadata(entry())
    assert metadata["versions"] == ["3"]
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [
        ("size", "FP64"),
        ("rooms", "INT64"),
        ("color", "BYTES"),
        ("garden", "BOOL"),
    ]
    assert metadata["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    assert "image_input" not in metadata["parameters"]
    image = ImageSpec(width=2, height=2, max_value=16)
    digits = entry(Task.CLASSIFICATION, classes=["0", "1"], image=image)
    described = model_metadata(digits)
    assert described["outputs"][0]["datatype"] == "INT64"
    assert described["parameters"]["image_input"]["datatype"] == "BYTES"
    assert described["parameters"]["image_input"]["width"] == 2
    out = {"predictions": [{"prediction": "1", "probabilities": {"0": 0.1, "1": 0.9}}]}
    (label, _) = orjson.loads(InferCodec(None, None, 100).answer(digits, out, "r", "v"))["outputs"]
    assert (label["datatype"], label["data"]) == ("INT64", [1])


async def test_an_image_apis_bytes_input_becomes_its_pixel_features_and_bad_bytes_a_400() -> None:
    """Base64 in JSON here (the integration test sends binary through tritonclient)."""
    import base64

    from tests.integration.test_image_api import drawn

    pixels = [FeatureSpec(name=f"p{i}", type=FeatureType.INTEGER) for i in range(64)]
    spec = ImageSpec(width=8, height=8, max_value=16, integers=True)
    digits = entry(Task.CLASSIFICATION, classes=["0", "7"], features=pixels, image=spec)
    png = base64.b64encode(drawn("7")).decode()
    body = {
        "id": "x",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [png, png]}],
    }
    codec = InferCodec(None, None, 100)
    prepared = orjson.loads(await codec.prepare(digits, orjson.dumps(body)))
    (tensor,) = prepared["inputs"]
    assert prepared["id"] == "x" and tensor["shape"] == [2, 64] and tensor["datatype"] == "FP64"
    rows = codec.rows(digits, orjson.dumps(prepared))
    assert len(rows) == 2 and rows[0] == rows[1] and max(rows[0]) == 16

    body["inputs"][0]["data"] = ["bm90IGFuIGltYWdl", png]  # "not an image"
    with pytest.raises(IngressError) as caught:
        await InferCodec(None, None, 100).prepare(digits, orjson.dumps(body))
    assert caught.value.status == 400 and caught.value.code == "INVALID_IMAGE"
    # A features API ignores the hook: its BYTES input is checked as features are.
    assert await codec.prepare(entry(), orjson.dumps(body)) == orjson.dumps(body)


def binary_request(inputs: list[dict[str, Any]], data: bytes) -> tuple[bytes, str]:
    head = orjson.dumps({"inputs": inputs})
    return head + data, str(len(head))


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        # Shapes are held to the row cap (100 here) and to 100 rows of the 4 features before any
        # data is looked at: the claim, not the data, is refused.
        ({"name": "x", "datatype": "FP64", "shape": [2**31, 2**31]}, "at most 100 rows"),
        ({"name": "size", "datatype": "FP64", "shape": [101], "data": "later"}, "at most 100"),
        ({"name": "x", "datatype": "FP64", "shape": [1, 10**6]}, "more than the 400"),
        ({"name": "x", "datatype": "FP64", "shape": [1, 2**62, 2**62]}, "more than the 400"),
        # Data longer than its shape: the walk stops one element (or a few lists) past it.
        ({"name": "size", "datatype": "FP64", "shape": [1], "data": [0] * 10_000}, "more than 1"),
        ({"name": "size", "datatype": "FP64", "shape": [1], "data": [[]] * 10_000}, "more lists"),
    ],
)
def test_a_shape_bounds_the_work_before_any_data_is_read(
    tensor: dict[str, Any], words: str
) -> None:
    exc = error({"inputs": [tensor]})
    assert exc.status == 400 and exc.code == "INVALID_INPUT" and words in exc.message, exc.message


def test_binary_bytes_elements_past_the_shape_are_refused_at_the_first_one_too_many() -> None:
    element = struct.pack("<I", 0)
    tensor = {"name": "color", "datatype": "BYTES", "shape": [1]}
    body, header = binary_request(
        [{**tensor, "parameters": {"binary_data_size": 4 * 10_000}}], element * 10_000
    )
    with pytest.raises(IngressError) as caught:
        rows(body, header)
    assert caught.value.status == 400 and "more than 1 BYTES elements" in caught.value.message


@pytest.mark.parametrize(
    ("inputs", "data", "header", "words"),
    [
        # A length prefix that claims more than the body holds.
        (
            [
                {
                    "name": "color",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": 8},
                }
            ],
            struct.pack("<I", 2**31) + b"abcd",
            None,
            "truncated",
        ),
        # binary_data_size that disagrees with shape x datatype, or with the body.
        (
            [
                {
                    "name": "size",
                    "datatype": "FP64",
                    "shape": [2],
                    "parameters": {"binary_data_size": 8},
                }
            ],
            b"\0" * 8,
            None,
            "16 bytes",
        ),
        (
            [
                {
                    "name": "size",
                    "datatype": "FP64",
                    "shape": [1],
                    "parameters": {"binary_data_size": 2**40},
                }
            ],
            b"\0" * 8,
            None,
            "does not match",
        ),
        (
            [
                {
                    "name": "size",
                    "datatype": "FP64",
                    "shape": [1],
                    "parameters": {"binary_data_size": -8},
                }
            ],
            b"\0" * 8,
            None,
            "does not match",
        ),
        (
            [
                {
                    "name": "size",
                    "datatype": "FP64",
                    "shape": [1],
                    "parameters": {"binary_data_size": True},
                }
            ],
            b"\0" * 8,
            None,
            "does not match",
        ),
        # The JSON part's length: past the body, negative, not a number.
        ([], b"", "999999999", "Inference-Header-Content-Length"),
        ([], b"", "-1", "Inference-Header-Content-Length"),
        ([], b"", "12abc", "Inference-Header-Content-Length"),
        ([], b"", "1" * 5000, "Inference-Header-Content-Length"),
    ],
)
def test_lying_binary_sizes_are_a_400_that_says_which(
    inputs: list[dict[str, Any]], data: bytes, header: str | None, words: str
) -> None:
    body, length = binary_request(inputs or [{"name": "x"}], data)
    with pytest.raises(IngressError) as caught:
        rows(body, header or length)
    assert caught.value.status == 400 and words in caught.value.message, caught.value.message


async def test_binary_bytes_no_input_claims_are_a_400_for_an_image_api_too() -> None:
    from tests.integration.test_image_api import drawn

    pixels = [FeatureSpec(name=f"p{i}", type=FeatureType.INTEGER) for i in range(64)]
    spec = ImageSpec(width=8, height=8, max_value=16, integers=True)
    digits = entry(Task.CLASSIFICATION, classes=["0", "7"], features=pixels, image=spec)
    png = drawn("7")
    element = struct.pack("<I", len(png)) + png
    tensor = {"name": "image", "datatype": "BYTES", "shape": [1]}
    body, header = binary_request(
        [{**tensor, "parameters": {"binary_data_size": len(element)}}], element + b"smuggled"
    )
    with pytest.raises(IngressError) as caught:
        await InferCodec(header, None, 100).prepare(digits, body)
    assert caught.value.status == 400 and "8 bytes of binary data" in caught.value.message
    prepared = await InferCodec(header, None, 100).prepare(digits, body[: -len(b"smuggled")])
    assert orjson.loads(prepared)["inputs"][0]["shape"] == [1, 64]


def test_a_feature_of_a_long_name_is_sent_as_its_own_input_and_names_are_bounded() -> None:
    """Feature names come from CSV headers and may pass 64 characters: they match whole."""
    long = "average_monthly_energy_consumption_of_the_household_in_kilowatt_hours"
    assert len(long) > 64
    features = [FeatureSpec(name=long, type=FeatureType.NUMBER)]
    body = {"inputs": [{"name": long, "datatype": "FP64", "shape": [2], "data": [1.5, 2.5]}]}
    assert rows(body, features=features) == [[1.5], [2.5]]
    huge = {"inputs": [{"name": "n" * 5000, "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    exc = error(huge)
    assert exc.status == 400 and "more than 1024 characters" in exc.message
    assert len(exc.message) < 200
