"""The deploy guard's rule: which differences between the served version and a target break
requests that are valid today (no services needed)."""

from __future__ import annotations

from typing import Any

from management_api.compat import Signature, compare, signature_of, summary
from schemas import FeatureSpec, Task


def feature(name: str, type_: str = "number", **extra: Any) -> FeatureSpec:
    return FeatureSpec.model_validate({"name": name, "type": type_, **extra})


CHURN = Signature(
    task=Task.CLASSIFICATION,
    features=[
        feature("age", "integer"),
        feature("monthly_spend"),
        feature("plan", "category", categories=["basic", "plus", "pro"]),
        feature("has_support", "boolean", required=False),
    ],
    classes=["no", "yes"],
)


def churn(**changes: Any) -> Signature:
    return CHURN.model_copy(update=changes)


def test_the_same_signature_is_compatible_with_an_empty_diff() -> None:
    diff = compare(CHURN, churn())
    assert diff.compatible
    assert diff.model_dump(exclude={"compatible"}, exclude_defaults=True) == {}
    assert summary(diff) == ""


def test_feature_order_and_class_order_do_not_matter() -> None:
    reordered = churn(features=list(reversed(CHURN.features)), classes=["yes", "no"])
    assert compare(CHURN, reordered).compatible


def test_another_dataset_lists_missing_and_new_features_and_classes() -> None:
    iris = Signature(
        task=Task.CLASSIFICATION,
        features=[feature("sepal_length_cm"), feature("age", "integer")],
        classes=["setosa", "versicolor", "virginica"],
    )
    diff = compare(CHURN, iris)
    assert not diff.compatible
    assert diff.missing_features == ["monthly_spend", "plan", "has_support"]
    assert diff.added_required_features == ["sepal_length_cm"]
    assert diff.classes is not None
    assert diff.classes.removed == ["no", "yes"]
    assert diff.classes.added == ["setosa", "versicolor", "virginica"]
    assert "missing features: monthly_spend, plan, has_support" in summary(diff)
    assert "changed classes" in summary(diff)


def test_an_added_optional_feature_is_harmless_an_added_required_one_is_not() -> None:
    optional = compare(CHURN, churn(features=[*CHURN.features, feature("region", required=False)]))
    assert optional.compatible and optional.added_optional_features == ["region"]
    required = compare(CHURN, churn(features=[*CHURN.features, feature("region")]))
    assert not required.compatible and required.added_required_features == ["region"]


def test_a_feature_that_becomes_required_breaks_callers_who_omit_it() -> None:
    features = [
        f if f.name != "has_support" else feature("has_support", "boolean") for f in CHURN.features
    ]
    diff = compare(CHURN, churn(features=features))
    assert not diff.compatible and diff.now_required_features == ["has_support"]
    # The other way round (required → optional) accepts every request of today.
    assert compare(churn(features=features), CHURN).compatible


def test_type_changes_break_except_integer_to_number() -> None:
    def with_age(type_: str) -> Signature:
        return churn(
            features=[f if f.name != "age" else feature("age", type_) for f in CHURN.features]
        )

    widened = compare(CHURN, with_age("number"))
    assert widened.compatible
    assert [(t.name, t.served, t.target, t.breaking) for t in widened.changed_types] == [
        ("age", "integer", "number", False)
    ]
    narrowed = compare(with_age("number"), CHURN)
    assert not narrowed.compatible and narrowed.changed_types[0].breaking
    as_category = compare(CHURN, with_age("category"))
    assert not as_category.compatible and "changed types: age" in summary(as_category)


def test_removed_categories_break_added_ones_do_not() -> None:
    def with_plan(categories: list[str] | None) -> Signature:
        plan = feature("plan", "category", categories=categories)
        return churn(features=[f if f.name != "plan" else plan for f in CHURN.features])

    added = compare(CHURN, with_plan(["basic", "plus", "pro", "max"]))
    assert added.compatible and added.changed_categories[0].added == ["max"]
    removed = compare(CHURN, with_plan(["basic", "pro"]))
    assert not removed.compatible
    [change] = removed.changed_categories
    assert (change.name, change.removed, change.added, change.breaking) == (
        "plan",
        ["plus"],
        [],
        True,
    )
    # "Any value" (no list, or an empty one as ingress reads it) narrowed to a list breaks;
    # widened to any value does not.
    assert not compare(with_plan(None), CHURN).compatible
    assert not compare(with_plan([]), CHURN).compatible
    assert compare(CHURN, with_plan(None)).compatible
    assert compare(with_plan(None), with_plan([])).changed_categories == []


def test_another_task_is_incompatible() -> None:
    regression = churn(task=Task.REGRESSION, classes=None)
    diff = compare(CHURN, regression)
    assert not diff.compatible
    assert diff.task is not None and (diff.task.served, diff.task.target) == (
        "classification",
        "regression",
    )
    assert diff.classes is not None and diff.classes.target is None
    assert summary(diff).startswith("task classification → regression")


def test_signature_of_reads_the_stored_json_of_a_version() -> None:
    stored = [{"name": "x", "type": "number", "required": True, "categories": None}]
    signature = signature_of("regression", stored, None)
    assert signature == Signature(task=Task.REGRESSION, features=[feature("x")], classes=None)
    assert compare(signature, signature).compatible
