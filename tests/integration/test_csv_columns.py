# ruff: noqa: F811
"""CSV training with the wizard's column choices (issue 11): ``drop_columns`` leaves columns out
of the features and ``column_types`` types a column by hand (numeric or categorical); bad choices
(an unknown column, the target dropped or retyped, every feature dropped, text typed as numeric)
are a clear 400 and create nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
from aiohttp import FormData

from tests.management_support import Api, api, clickhouse_db, make_api  # noqa: F401


def churn_with_id(rows: int = 120, seed: int = 1) -> bytes:
    """An id column (unique per row), a zip code written as digits, a yes/no flag and a target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + rows),
            "zip": rng.choice([75001, 69002, 13003], rows),
            "age": rng.integers(18, 80, rows),
            "vip": rng.choice(["true", "false"], rows),
            "score": rng.choice(["1", "2", "3"], rows),
        }
    )
    frame["churned"] = np.where(frame["age"] > 45, "yes", "no")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def train_form(name: str, **fields: Any) -> FormData:
    form = FormData()
    form.add_field("file", churn_with_id(), filename="churn.csv", content_type="text/csv")
    form.add_field("name", name)
    form.add_field("target", "churned")
    form.add_field("algorithm", "logistic_regression")
    for key, value in fields.items():
        form.add_field(key, value if isinstance(value, str) else json.dumps(value))
    return form


async def test_dropped_and_retyped_columns_shape_the_trained_models_features(api: Api) -> None:
    """Dropping the id and typing zip and vip as categories, score as numeric: the version's
    features are exactly the kept columns with those types, and its example predicts."""
    owner = await api.new_user("wizard")
    status, job = await api.call(
        "POST",
        "/api/models/train",
        owner,
        data=train_form(
            "churn",
            drop_columns=["customer_id"],
            column_types={"zip": "categorical", "vip": "categorical", "score": "numeric"},
        ),
    )
    assert status == 202, job
    done = await api.wait_job(owner, job["id"])
    assert done["status"] == "succeeded", done
    status, model = await api.call("GET", f"/api/models/{done['model_id']}", owner)
    assert status == 200, model
    features = {f["name"]: f for f in model["versions"][0]["features"]}
    assert list(features) == ["zip", "age", "vip", "score"]
    assert features["zip"]["type"] == "category"
    assert features["zip"]["categories"] == ["13003", "69002", "75001"]
    assert features["vip"]["type"] == "category"  # not the boolean it would be inferred as
    assert features["vip"]["categories"] == ["false", "true"]
    assert features["score"]["type"] == "integer"  # numbers, not the text it was read as
    assert features["age"]["type"] == "integer"
    status, logs = await api.call("GET", f"/api/training-jobs/{job['id']}/logs", owner)
    assert any("customer_id" in line for line in logs["lines"]), logs


async def test_without_choices_the_same_csv_keeps_every_column(api: Api) -> None:
    """The control: no choices, the id is a feature and zip an integer (what the wizard's flag
    and type menu are for)."""
    owner = await api.new_user("control")
    status, job = await api.call("POST", "/api/models/train", owner, data=train_form("plain"))
    assert status == 202, job
    done = await api.wait_job(owner, job["id"])
    assert done["status"] == "succeeded", done
    status, model = await api.call("GET", f"/api/models/{done['model_id']}", owner)
    types = {f["name"]: f["type"] for f in model["versions"][0]["features"]}
    assert types == {
        "customer_id": "integer",
        "zip": "integer",
        "age": "integer",
        "vip": "boolean",
        "score": "integer",
    }


async def test_bad_column_choices_are_a_clear_400_and_create_nothing(api: Api) -> None:
    owner = await api.new_user("careless")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"drop_columns": ["nope"]}, "nope"),
        ({"column_types": {"ghost": "numeric"}}, "ghost"),
        ({"drop_columns": ["churned"]}, "target"),
        ({"column_types": {"churned": "categorical"}}, "target"),
        ({"drop_columns": ["customer_id", "zip", "age", "vip", "score"]}, "every feature"),
        ({"column_types": {"vip": "numeric"}}, "cannot be numeric"),
        ({"drop_columns": ["zip"], "column_types": {"zip": "numeric"}}, "both dropped"),
        ({"column_types": {"zip": "text"}}, "column_types"),
        ({"drop_columns": "customer_id"}, "drop_columns"),
        ({"drop_columns": [""]}, "drop_columns"),
    ]
    for fields, words in cases:
        status, body = await api.call(
            "POST", "/api/models/train", owner, data=train_form("bad", **fields)
        )
        assert status == 400, (fields, body)
        assert body["error"]["code"] == "INVALID_INPUT", (fields, body)
        assert words in json.dumps(body), (fields, body)
    status, models = await api.call("GET", "/api/models", owner)
    assert models["items"] == []
    assert not list(api.settings.model_store.rglob("*.skops"))
