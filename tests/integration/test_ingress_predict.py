"""Predictions through ingress → RabbitMQ → predictor, for a classifier and a regressor."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.prediction_fixtures import (
    HOUSE_ROW,
    IRIS_ROW,
    PredictionWorld,
    expected_prediction,
)


async def post(
    http: aiohttp.ClientSession, url: str, key: str | None, body: Any
) -> tuple[int, dict[str, Any], Any]:
    headers = {"X-API-Key": key} if key else {}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


async def test_classifier_and_regressor_answer_single_rows_and_instances(
    world: PredictionWorld, start_ingress: Any, start_worker: Any
) -> None:
    await start_worker()
    ingress = await start_ingress()
    async with aiohttp.ClientSession() as http:
        status, _, body = await post(
            http, f"{ingress.url}/api/predict/iris", world.keys["iris"], IRIS_ROW
        )
        assert status == 200, body
        assert body["prediction"] == expected_prediction(world, "iris", IRIS_ROW) == "setosa"
        assert set(body["probabilities"]) == {"setosa", "versicolor", "virginica"}
        assert abs(sum(body["probabilities"].values()) - 1.0) < 1e-3
        assert body["model_version"] == "iris-v1" and len(body["request_id"]) == 32

        other = {**IRIS_ROW, "petal_length": 6.0, "petal_width": 2.2}
        status, _, body = await post(
            http,
            f"{ingress.url}/api/predict/iris",
            world.keys["iris"],
            {"instances": [IRIS_ROW, other]},
        )
        assert status == 200, body
        assert [p["prediction"] for p in body["predictions"]] == ["setosa", "virginica"]
        assert all("probabilities" in p for p in body["predictions"])

        status, _, body = await post(
            http, f"{ingress.url}/api/predict/house", world.keys["house"], HOUSE_ROW
        )
        assert status == 200, body
        assert abs(body["prediction"] - expected_prediction(world, "house", HOUSE_ROW)) < 1e-6
        assert "probabilities" not in body

        rows = [HOUSE_ROW, {**HOUSE_ROW, "size": 50.0, "color": "blue", "garden": False}]
        status, _, body = await post(
            http, f"{ingress.url}/api/predict/house", world.keys["house"], {"instances": rows}
        )
        assert status == 200, body
        for row, got in zip(rows, body["predictions"], strict=True):
            assert abs(got["prediction"] - expected_prediction(world, "house", row)) < 1e-6
