"""Whether a model version can replace the one an API serves without breaking its callers.

Ingress checks every request against the served version's features (missing, unexpected and
mistyped values are 400) and callers read the answer's classes, so a deploy that changes them turns
every valid request of today into an error. ``compare`` lists each difference and whether it
breaks a request that is valid now; no I/O, so the deploy guard and the dashboard's preview share
one rule.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from schemas import FeatureSpec, FeatureType, ImageSpec, Task
from schemas.resources import RequestModel


class Signature(BaseModel):
    """What callers depend on in a version: its task, input features and output classes."""

    task: Task
    features: list[FeatureSpec]
    classes: list[str] | None = None
    image: ImageSpec | None = None
    """Images it takes beside features (ingress turns them into the pixel features)."""


class TaskChange(BaseModel):
    served: Task
    target: Task


class TypeChange(BaseModel):
    """A feature whose type differs; ``breaking`` unless every served value stays valid."""

    name: str
    served: FeatureType
    target: FeatureType
    breaking: bool


class CategoryChange(BaseModel):
    """A category feature whose allowed values differ (``None``: any value is accepted)."""

    name: str
    served: list[str] | None
    target: list[str] | None
    removed: list[str] = Field(description="values accepted now and refused by the target")
    added: list[str]
    breaking: bool


class ClassChange(BaseModel):
    served: list[str] | None
    target: list[str] | None
    removed: list[str]
    added: list[str]


class CompatibilityDiff(BaseModel):
    """Every difference between the served version and the target, breaking ones first."""

    compatible: bool = Field(description="no difference breaks a request valid today")
    task: TaskChange | None = None
    missing_features: list[str] = Field(
        default_factory=list,
        description="served features the target lacks: callers sending them get 400",
    )
    added_required_features: list[str] = Field(
        default_factory=list, description="required by the target, unknown to today's callers"
    )
    now_required_features: list[str] = Field(
        default_factory=list, description="optional today, required by the target"
    )
    changed_types: list[TypeChange] = Field(default_factory=list)
    changed_categories: list[CategoryChange] = Field(default_factory=list)
    classes: ClassChange | None = None
    image_dropped: bool = Field(
        False,
        description="the served version takes images and the target does not: callers sending "
        "images get 400",
    )
    added_optional_features: list[str] = Field(
        default_factory=list, description="optional in the target: harmless"
    )


class CompatibilityReport(CompatibilityDiff):
    """The diff between what an API serves and one of its model's versions (before a deploy)."""

    api_id: str
    served_version: int
    target_version: int


class CompatibilityQuery(RequestModel):
    version: int | None = Field(None, ge=1, description="version number; the latest if absent")


WIDENINGS = {(FeatureType.INTEGER, FeatureType.NUMBER)}
"""Type changes that accept every value the served type accepts (an integer is a number)."""


def compare(served: Signature, target: Signature) -> CompatibilityDiff:
    """The differences between ``served`` and ``target`` and whether any breaks today's callers."""
    old = {f.name: f for f in served.features}
    new = {f.name: f for f in target.features}
    missing = [name for name in old if name not in new]
    added = [f for name, f in new.items() if name not in old]
    now_required: list[str] = []
    types: list[TypeChange] = []
    categories: list[CategoryChange] = []
    for name, before in old.items():
        after = new.get(name)
        if after is None:
            continue
        if after.required and not before.required:
            now_required.append(name)
        if after.type != before.type:
            types.append(
                TypeChange(
                    name=name,
                    served=before.type,
                    target=after.type,
                    breaking=(before.type, after.type) not in WIDENINGS,
                )
            )
        elif after.type == FeatureType.CATEGORY:
            change = _category_change(name, before.categories, after.categories)
            if change is not None:
                categories.append(change)
    task = (
        None if served.task == target.task else TaskChange(served=served.task, target=target.task)
    )
    classes = _class_change(served.classes, target.classes)
    diff = CompatibilityDiff(
        compatible=True,
        image_dropped=served.image is not None and target.image is None,
        task=task,
        missing_features=missing,
        added_required_features=[f.name for f in added if f.required],
        now_required_features=now_required,
        changed_types=types,
        changed_categories=categories,
        classes=classes,
        added_optional_features=[f.name for f in added if not f.required],
    )
    diff.compatible = not (
        task is not None
        or missing
        or diff.added_required_features
        or now_required
        or any(t.breaking for t in types)
        or any(c.breaking for c in categories)
        or classes is not None
        or diff.image_dropped
    )
    return diff


def _category_change(
    name: str, served: list[str] | None, target: list[str] | None
) -> CategoryChange | None:
    served, target = served or None, target or None  # ingress reads [] as "any value" too
    if set(served or ()) == set(target or ()) and (served is None) == (target is None):
        return None
    before, after = set(served or ()), set(target or ())
    removed = sorted(before - after) if target is not None else []
    added = sorted(after - before) if served is not None else []
    # A restricted list replacing "any value" refuses values accepted today.
    breaking = bool(removed) or (served is None and target is not None)
    return CategoryChange(
        name=name, served=served, target=target, removed=removed, added=added, breaking=breaking
    )


def _class_change(served: list[str] | None, target: list[str] | None) -> ClassChange | None:
    """Any other set of classes changes what callers read (order alone does not: probabilities
    are keyed by class)."""
    if set(served or ()) == set(target or ()) and (served is None) == (target is None):
        return None
    before, after = set(served or ()), set(target or ())
    return ClassChange(
        served=served, target=target, removed=sorted(before - after), added=sorted(after - before)
    )


def summary(diff: CompatibilityDiff) -> str:
    """One sentence naming the breaking differences (the 409's message)."""
    parts: list[str] = []
    if diff.task is not None:
        parts.append(f"task {diff.task.served} → {diff.task.target}")
    if diff.missing_features:
        parts.append("missing features: " + ", ".join(diff.missing_features[:10]))
    if diff.added_required_features:
        parts.append("new required features: " + ", ".join(diff.added_required_features[:10]))
    if diff.now_required_features:
        parts.append("now required: " + ", ".join(diff.now_required_features[:10]))
    breaking_types = [t.name for t in diff.changed_types if t.breaking]
    if breaking_types:
        parts.append("changed types: " + ", ".join(breaking_types[:10]))
    breaking_categories = [c.name for c in diff.changed_categories if c.breaking]
    if breaking_categories:
        parts.append("changed categories: " + ", ".join(breaking_categories[:10]))
    if diff.classes is not None:
        parts.append("changed classes")
    if diff.image_dropped:
        parts.append("takes no images")
    return "; ".join(parts)


def signature_of(
    task: str,
    features: list[dict[str, Any]],
    classes: list[str] | None,
    image: dict[str, Any] | None = None,
) -> Signature:
    """A stored version's signature (the metadata DB keeps features and images as JSON)."""
    return Signature(
        task=Task(task),
        features=[FeatureSpec.model_validate(f) for f in features],
        classes=classes,
        image=ImageSpec.model_validate(image) if image else None,
    )
