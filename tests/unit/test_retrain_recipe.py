"""Retrain's recipe (issue 15): what a version recorded is enough to train it again (built-in
dataset, algorithm, params, the test share its split was made with), and versions that cannot be
trained again (from a CSV that was not kept, uploaded) are refused with 409 RECIPE_UNAVAILABLE."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from management_api.db import ModelVersion
from management_api.errors import Conflict
from management_api.fitting import with_extra_rows
from management_api.retrain import feedback_rows_sql, recipe_of, rows_of, split_share_of
from schemas import Task


def version(source: str, n_train: int = 120, n_test: int = 30) -> ModelVersion:
    return ModelVersion(
        number=1,
        algorithm="random_forest",
        params={"n_estimators": 7, "max_depth": 3},
        source=source,
        n_train=n_train,
        n_test=n_test,
    )


def test_a_builtin_version_gives_its_dataset_algorithm_params_and_test_share() -> None:
    recipe = recipe_of(version("builtin:iris", 105, 45))
    assert (recipe.dataset, recipe.algorithm, recipe.test_size) == ("iris", "random_forest", 0.3)
    assert recipe.params == {"n_estimators": 7, "max_depth": 3}


@pytest.mark.parametrize("n", [150, 178, 442, 569, 1797])
@pytest.mark.parametrize("share", [0.2, 0.25, 0.3, 0.15, 0.5, 0.33])
def test_the_test_share_is_recovered_from_the_split_sizes(n: int, share: float) -> None:
    n_test = math.ceil(share * n)
    found = split_share_of(n - n_test, n_test)
    assert math.ceil(found * n) == n_test
    assert abs(found - share) < 0.01


@pytest.mark.parametrize(
    ("source", "words"),
    [("csv:churn.csv", "CSV 'churn.csv'"), ("upload", "uploaded"), ("", "no recipe")],
)
def test_versions_without_a_recipe_are_refused_with_409(source: str, words: str) -> None:
    with pytest.raises(Conflict) as refused:
        recipe_of(version(source))
    assert refused.value.code == "RECIPE_UNAVAILABLE" and refused.value.status == 409
    assert words in refused.value.message


def test_feedback_rows_come_from_single_logged_objects_with_their_actual_value() -> None:
    found = [
        {"input": '{"a": 1.5, "b": "x", "junk": 3}', "actual": "yes"},
        {"input": '{"instances": [{"a": 1}]}', "actual": "no"},
        {"input": "not json", "actual": "no"},
        {"input": '{"a": [1, 2]}', "actual": "no"},
    ]
    assert rows_of(found, ["a", "b"], "target") == [{"a": 1.5, "b": "x", "target": "yes"}]
    sql = feedback_rows_sql("modelgate_x")
    assert "modelgate_x.feedback" in sql and "{api_id:String}" in sql and "argMax" in sql


def test_extra_rows_join_the_dataset_with_its_types() -> None:
    frame = pd.DataFrame({"n": [1, 2], "x": [0.5, 1.5], "target": ["a", "b"]})
    out = with_extra_rows(
        frame,
        [{"n": 3, "x": "2.5", "target": "b"}, {"n": 4, "x": 1, "target": None}],
        Task.CLASSIFICATION,
    )
    assert list(out["target"]) == ["a", "b", "b"]
    assert out["n"].dtype.kind == "i" and list(out["x"]) == [0.5, 1.5, 2.5]
