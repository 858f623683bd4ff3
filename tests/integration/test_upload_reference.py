# ruff: noqa: F811
"""An uploaded version's reference profile (issue 15) from the reference CSV given with it: the
CSV is parsed and profiled, and the model run on its rows, in the limited child; the profile is
then served like a trained version's. A CSV lacking a feature, with a mistyped value, too wide
or not a CSV at all is a 400 saying so, and no model is created."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import skops.io as sio
from aiohttp import FormData

from management_api.reference import build_profile
from schemas import FeatureSpec, Task
from tests.integration.test_upload_safety import FEATURES, upload_form
from tests.management_support import Api, api, clickhouse_db, make_api  # noqa: F401
from tests.unit.test_model_store import upload_pipeline


def reference_rows(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "size": rng.normal(3.5, 1.5, rows).round(3),
            "color": rng.choice(["red", "blue"], rows),
            "rest": rng.uniform(0, 1, rows).round(3),
            "target": rng.integers(0, 2, rows),  # the target column: ignored
            "note": ["extra"] * rows,  # a column the model does not use: ignored
        }
    )


def csv_of(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def with_reference(model: bytes, csv: bytes, name: str) -> FormData:
    form = upload_form(model, name)
    form.add_field("reference", csv, filename="reference.csv", content_type="text/csv")
    return form


async def test_an_upload_with_a_reference_csv_gets_its_profile_and_bad_csvs_are_refused(
    api: Api,
) -> None:
    owner = await api.new_user("referee")
    pipeline = upload_pipeline()
    model = sio.dumps(pipeline)
    frame = reference_rows()

    for csv, expected in (
        (csv_of(frame.drop(columns=["rest"])), "'rest'"),
        (csv_of(frame.assign(size=["big", *frame["size"][1:]])), "'size'"),
        (",".join(f"c{i}" for i in range(1002)).encode() + b"\n1\n", "1,001 feature columns"),
        (b"\x00\x01garbage\xff\xfe\n\x00", "cannot read the CSV"),
    ):
        status, body = await api.call(
            "POST", "/api/models/upload", owner, data=with_reference(model, csv, "refused")
        )
        assert status == 400, body
        assert expected in body["error"]["message"], body
        assert body["error"]["details"]["field"] == "reference"
        if expected == "'rest'":
            assert body["error"]["details"]["missing"] == ["rest"]
    assert (await api.call("GET", "/api/models", owner))[1]["items"] == []

    status, created = await api.call(
        "POST", "/api/models/upload", owner, data=with_reference(model, csv_of(frame), "watched")
    )
    assert status == 201, created
    status, profile = await api.call(
        "GET", f"/api/models/{created['id']}/versions/1/reference", owner
    )
    assert status == 200, profile
    assert profile["source"] == "upload_reference"
    assert profile["rows"] == len(frame)
    # Bins and shares from the CSV's rows, exactly as a training profile is built.
    specs = [FeatureSpec.model_validate(f) for f in json.loads(FEATURES)]
    predicted = [str(p) for p in pipeline.predict(frame[["size", "color", "rest"]])]
    expected = build_profile(frame, specs, Task.CLASSIFICATION, predicted, "upload_reference")
    assert profile["features"] == expected["features"]
    assert [f["name"] for f in profile["features"]] == ["size", "color", "rest"]
    shares = {c["value"]: c["share"] for c in profile["prediction"]["categories"]}
    assert shares == {
        label: round(predicted.count(label) / len(predicted), 6) for label in set(predicted)
    }
    assert profile["prediction"]["kind"] == "classes"
