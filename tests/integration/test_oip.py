"""Open Inference Protocol V2 on ingress, called by the protocol's real clients: Triton's
``tritonclient.http`` and KServe's ``InferenceRESTClient`` (tests/kserve-client.txt says why it
is installed without its declared dependencies). Real ingress, broker, predictor; the last test
follows the requests into ClickHouse."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from schemas.messages import EVENT_COLUMN_OF
from tests.integration.metrics_support import ConsumerProcess, consumer_env, wait_for_count
from tests.integration.test_image_api import add_digits_api, drawn
from tests.prediction_fixtures import (
    HOUSE_FEATURES,
    HOUSE_ROW,
    IRIS_FEATURES,
    IRIS_ROW,
    PredictionWorld,
    expected_prediction,
)

try:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        f"{exc}: install the test clients with `.venv/bin/pip install -e '.[dev]'` "
        "(tritonclient[http] is a dev dependency)"
    ) from exc
try:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        f"{exc}: install KServe's client with "
        "`.venv/bin/pip install --no-deps -r tests/kserve-client.txt` (make bootstrap does)"
    ) from exc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OTHER_IRIS = {**IRIS_ROW, "petal_length": 6.0, "petal_width": 2.2}
IRIS_MATRIX = np.array(
    [[IRIS_ROW[n] for n in IRIS_FEATURES], [OTHER_IRIS[n] for n in IRIS_FEATURES]]
)


def _triton_infer(url: str, key: str) -> dict[str, Any]:
    """Everything the Triton client does, synchronously (run in a thread: it blocks)."""

    def bearer() -> dict[str, str]:
        # A fresh dict per call: infer() writes its binary header length into the one it gets.
        return {"Authorization": f"Bearer {key}"}

    client = triton.InferenceServerClient(url.removeprefix("http://"))
    seen: dict[str, Any] = {}
    try:
        seen["live"] = client.is_server_live()
        seen["ready"] = client.is_server_ready()
        seen["model_ready"] = client.is_model_ready("iris", headers=bearer())
        seen["metadata"] = client.get_model_metadata("iris", headers=bearer())
        seen["metadata_v1"] = client.get_model_metadata("iris", "1", headers={"X-API-Key": key})

        # One [N, F] FP32 tensor, binary (the client's default), all outputs.
        matrix = triton.InferInput("input", [2, 4], "FP32")
        matrix.set_data_from_numpy(IRIS_MATRIX.astype(np.float32))
        result = client.infer("iris", [matrix], headers=bearer(), request_id="req-7")
        seen["matrix"] = (
            result.as_numpy("label"),
            result.as_numpy("probabilities"),
            result.get_output("probabilities"),
            result.get_response(),
        )

        # One FP64 input per feature as JSON, only the label asked for, version in the path.
        columns = []
        for name in IRIS_FEATURES:
            column = triton.InferInput(name, [2, 1], "FP64")
            column.set_data_from_numpy(IRIS_MATRIX[:, [IRIS_FEATURES.index(name)]], False)
            columns.append(column)
        wanted = [triton.InferRequestedOutput("label", binary_data=False)]
        result = client.infer("iris", columns, model_version="1", outputs=wanted, headers=bearer())
        seen["columns"] = result.get_response()

        errors: dict[str, InferenceServerException] = {}
        for case, call in {
            "wrong_key": lambda: client.infer(
                "iris", [matrix], headers={"Authorization": "Bearer mg_wrong"}
            ),
            "no_key": lambda: client.get_model_metadata("iris"),
            "metadata_wrong_key": lambda: client.get_model_metadata(
                "iris", headers={"X-API-Key": "mg_wrong"}
            ),
            "wrong_shape": lambda: client.infer("iris", [_fp32([2, 3])], headers=bearer()),
            "unknown_model": lambda: client.infer("nope", [matrix], headers=bearer()),
            "wrong_version": lambda: client.infer(
                "iris", [matrix], model_version="2", headers=bearer()
            ),
        }.items():
            try:
                call()
            except InferenceServerException as exc:
                errors[case] = exc
        seen["errors"] = errors
    finally:
        client.close()
    return seen


def _fp32(shape: list[int]) -> Any:
    tensor = triton.InferInput("input", shape, "FP32")
    tensor.set_data_from_numpy(np.ones(shape, dtype=np.float32))
    return tensor


def _triton_images(url: str, key: str, images: list[bytes]) -> list[int]:
    """The labels of PNG files sent as one BYTES input (binary, the client's default)."""
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("image", [len(images)], "BYTES")
        tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
        result = client.infer("digits", [tensor], headers={"X-API-Key": key})
        label = result.get_output("label")
        assert label is not None and label["datatype"] == "INT64"  # classes "0".."9", as announced
        return [int(x) for x in result.as_numpy("label").tolist()]
    finally:
        client.close()


async def test_tritonclient_reads_metadata_and_predicts_with_the_key(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    """Also: PNG files of digits drawn at test time, as a BYTES input of a digits API."""
    add_digits_api(world)
    await start_worker()
    ingress = await start_ingress(ingress_ready_requires_predictor=True)
    seen = await asyncio.to_thread(_triton_infer, ingress.url, world.keys["iris"])
    digits = [drawn("0"), drawn("7")]
    labels = await asyncio.to_thread(_triton_images, ingress.url, world.keys["digits"], digits)
    assert labels == [0, 7]

    assert seen["live"] and seen["ready"] and seen["model_ready"]
    metadata = seen["metadata"]
    assert metadata["name"] == "iris" and metadata["versions"] == ["1"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        (n, "FP64", [-1]) for n in IRIS_FEATURES
    ]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
        ("label", "BYTES"),
        ("probabilities", "FP64"),
    ]
    assert seen["metadata_v1"] == metadata

    labels, probabilities, output, response = seen["matrix"]
    expected = [expected_prediction(world, "iris", r) for r in (IRIS_ROW, OTHER_IRIS)]
    assert [x.decode() for x in labels.tolist()] == expected == ["setosa", "virginica"]
    assert probabilities.shape == (2, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    classes = output["parameters"]["classes"]
    assert classes == ["setosa", "versicolor", "virginica"]
    assert [classes[i] for i in probabilities.argmax(axis=1)] == expected
    assert response["id"] == "req-7" and response["model_version"] == "1"

    assert [o["name"] for o in seen["columns"]["outputs"]] == ["label"]
    assert seen["columns"]["outputs"][0]["data"] == expected

    errors = seen["errors"]
    assert set(errors) == {
        "wrong_key",
        "no_key",
        "metadata_wrong_key",
        "wrong_shape",
        "unknown_model",
        "wrong_version",
    }
    assert errors["wrong_key"].status() == "401" and "not valid" in errors["wrong_key"].message()
    assert errors["no_key"].status() == "401" and "API key" in errors["no_key"].message()
    assert errors["metadata_wrong_key"].status() == "401"
    assert errors["wrong_shape"].status() == "400"
    assert "[N, 4]" in errors["wrong_shape"].message()
    assert errors["unknown_model"].status() == "404"
    assert errors["wrong_version"].status() == "404"


async def test_kserve_client_predicts_a_classifier_and_a_regressor_with_the_key(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    await start_worker()
    ingress = await start_ingress(ingress_ready_requires_predictor=True)
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))

    def iris_key() -> dict[str, str]:
        # A fresh dict per call: infer() writes its binary header length into the one it gets.
        return {"Authorization": f"Bearer {world.keys['iris']}"}

    try:
        assert await client.is_server_live(ingress.url)
        assert await client.is_server_ready(ingress.url)
        assert await client.is_model_ready(ingress.url, "iris", headers=iris_key())
        assert not await client.is_model_ready(ingress.url, "iris")  # no key: not told

        matrix = InferInput("input", [2, 4], "FP64")
        matrix.set_data_from_numpy(IRIS_MATRIX, binary_data=True)
        request = InferRequest("iris", [matrix], request_id="k-1")
        response = await client.infer(ingress.url, request, "iris", headers=iris_key())
        outputs = {o.name: o for o in response.outputs}
        expected = [expected_prediction(world, "iris", r) for r in (IRIS_ROW, OTHER_IRIS)]
        assert outputs["label"].data == expected
        assert outputs["probabilities"].shape == [2, 3]
        assert response.id == "k-1" and response.model_name == "iris"

        # The regressor, one input per feature, each of its own datatype.
        rows = [HOUSE_ROW, {**HOUSE_ROW, "size": 50.0, "color": "blue", "garden": False}]
        house_inputs = []
        for name, datatype in zip(HOUSE_FEATURES, ["FP64", "INT64", "BYTES", "BOOL"], strict=True):
            tensor = InferInput(name, [2], datatype)
            tensor.set_data_from_numpy(
                np.array([r[name] for r in rows], dtype=object if datatype == "BYTES" else None),
                binary_data=False,
            )
            house_inputs.append(tensor)
        response = await client.infer(
            ingress.url,
            InferRequest("house", house_inputs),
            "house",
            headers={"X-API-Key": world.keys["house"]},
        )
        (predictions,) = response.outputs
        assert predictions.name == "predictions" and predictions.datatype == "FP64"
        for row, got in zip(rows, predictions.data, strict=True):
            assert abs(got - expected_prediction(world, "house", row)) < 1e-6

        with pytest.raises(httpx.HTTPStatusError) as wrong_key:
            await client.infer(ingress.url, request, "iris", headers={"X-API-Key": "mg_x"})
        assert wrong_key.value.response.status_code == 401
        assert wrong_key.value.response.json()["error"] == "the API key is not valid"

        bad = InferInput("input", [1, 3], "FP64")
        bad.set_data_from_numpy(np.ones((1, 3)), binary_data=False)
        with pytest.raises(httpx.HTTPStatusError) as wrong_shape:
            await client.infer(ingress.url, InferRequest("iris", [bad]), "iris", headers=iris_key())
        assert wrong_shape.value.response.status_code == 400
        body = wrong_shape.value.response.json()
        assert body["code"] == "INVALID_INPUT" and "[N, 4]" in body["error"]
    finally:
        await client.close()


async def test_an_oip_request_is_stored_like_a_json_one_and_shares_the_rate_limit(
    world: PredictionWorld,
    start_ingress: Any,
    start_worker: Any,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Two rows by JSON and the same two by OIP are two events of 2 rows each, alike but for
    their sizes; a rejected OIP request is stored with its status; the rate limit counts both."""
    await migrate_database(clickhouse_server, ch_database)
    consumer = ConsumerProcess(
        tmp_path,
        consumer_env(namespace, clickhouse_server, ch_database, consumer_flush_interval_s=0.2),
    )
    consumer.start()
    await start_worker()
    ingress = await start_ingress()
    oip_body = {
        "inputs": [
            {"name": "input", "datatype": "FP64", "shape": [2, 4], "data": IRIS_MATRIX.tolist()}
        ]
    }
    key = {"X-API-Key": world.keys["iris"]}
    try:
        async with aiohttp.ClientSession() as http:

            async def post(path: str, body: Any, headers: dict[str, str]) -> Any:
                async with http.post(f"{ingress.url}{path}", json=body, headers=headers) as r:
                    return r.status, dict(r.headers), await r.json()

            json_status, _, _ = await post(
                "/api/predict/iris", {"instances": [IRIS_ROW, OTHER_IRIS]}, key
            )
            oip_status, _, oip = await post("/v2/models/iris/infer", oip_body, key)
            assert (json_status, oip_status) == (200, 200), oip
            request_id = oip["parameters"]["request_id"]
            shape_status, _, _ = await post(
                "/v2/models/iris/infer",
                {"inputs": [{**oip_body["inputs"][0], "shape": [4, 2]}]},
                key,
            )
            assert shape_status == 400
            # "limited" allows 2 requests a minute: JSON, OIP, then OIP gets 429.
            limited = {"X-API-Key": world.keys["limited"]}
            statuses = [
                (await post("/api/predict/limited", IRIS_ROW, limited))[0],
                (await post("/v2/models/limited/infer", oip_body, limited))[0],
            ]
            status, headers, body = await post("/v2/models/limited/infer", oip_body, limited)
            assert statuses == [200, 200] and status == 429, body
            assert int(headers["Retry-After"]) >= 1 and "rate limit" in body["error"]
        await wait_for_count(clickhouse_server, ch_database, 6, timeout=60, what="events")
    finally:
        consumer.stop()

    client = await create_async_client(clickhouse_server)
    try:
        result = await client.query(
            f"SELECT event_id, api_id, status_code, error_code, rows, authenticated, "
            f"{EVENT_COLUMN_OF['version_key']} AS version_key, prediction, "
            f"worker_id != '' AS served "
            f"FROM {ch_database}.request_events ORDER BY ts, api_id"
        )
        events = list(result.named_results())
    finally:
        await client.close()
    iris = [e for e in events if e["api_id"] == "iris"]
    assert len(iris) == 3, events
    (by_oip,) = [e for e in iris if e["event_id"] == request_id]
    (bad_shape,) = [e for e in iris if e["status_code"] == 400]
    (by_json,) = [e for e in iris if e is not by_oip and e is not bad_shape]
    same = ("status_code", "rows", "authenticated", "version_key", "prediction", "served")
    assert {k: by_oip[k] for k in same} == {k: by_json[k] for k in same}
    assert by_oip["rows"] == 2 and by_oip["prediction"] == "setosa" and by_oip["served"]
    assert (bad_shape["status_code"], bad_shape["error_code"]) == (400, "INVALID_INPUT")
    limited_events = [
        (e["status_code"], e["error_code"]) for e in events if e["api_id"] == "limited"
    ]
    assert sorted(limited_events) == [(200, ""), (200, ""), (429, "RATE_LIMITED")]
