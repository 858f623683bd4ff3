"""Checks prediction inputs against an API's feature specs and orders them as model rows."""

from __future__ import annotations

from typing import Any

from schemas import FeatureSpec, FeatureType

MAX_REPORTED_INSTANCES = 10
MAX_REPORTED_NAMES = 20
"""Names listed per problem (missing, unexpected, mistyped); ``<problem>_count`` gives the total."""
MAX_NAME_CHARS = 64
FLOAT32_MAX = 3.4028234663852886e38
"""Numbers must stay finite as float32: tree models cast their input to it."""


class InvalidInput(Exception):
    """The input does not match the feature specs; ``details`` names what is wrong."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class FeatureValidator:
    """Validates rows (JSON objects) against an API's features; built once per API version."""

    def __init__(self, features: list[FeatureSpec]) -> None:
        self.feature_names = [f.name for f in features]
        self._specs = [
            (
                f.name,
                f.type,
                f.required,
                frozenset(f.categories) if f.categories else None,
            )
            for f in features
        ]
        self._known = frozenset(self.feature_names)
        self._categories = {f.name: f.categories for f in features if f.categories}

    def row(self, values: Any) -> list[Any]:
        """The row in feature order, or ``InvalidInput`` naming what is wrong."""
        row, problems = self._check(values)
        if problems is not None:
            raise InvalidInput(_summary(problems), problems)
        return row

    def rows(self, instances: list[Any]) -> list[list[Any]]:
        """Every instance as a row; all invalid instances are reported together (up to 10)."""
        rows: list[list[Any]] = []
        errors: list[dict[str, Any]] = []
        for index, values in enumerate(instances):
            row, problems = self._check(values)
            if problems is None:
                rows.append(row)
            else:
                errors.append({"index": index, **problems})
        if errors:
            details: dict[str, Any] = {
                "invalid_instances": len(errors),
                "instances": errors[:MAX_REPORTED_INSTANCES],
            }
            raise InvalidInput(
                f"{len(errors)} of {len(instances)} instances are invalid; "
                f"first: {_summary(errors[0])}",
                details,
            )
        return rows

    def _check(self, values: Any) -> tuple[list[Any], dict[str, Any] | None]:
        """The row in feature order and what is wrong with it (None: nothing), in one pass."""
        if not isinstance(values, dict):
            return [], {"not_an_object": f"expected a JSON object of features, got {_kind(values)}"}
        row: list[Any] = []
        missing: list[str] = []
        mistyped: dict[str, str] = {}
        for name, ftype, required, allowed in self._specs:
            value = values.get(name)
            if value is not None:
                problem = _type_problem(ftype, value, allowed)
                if problem is not None:
                    mistyped[name] = problem
                elif ftype is FeatureType.CATEGORY and type(value) is not str:
                    value = str(value)
            elif required:
                missing.append(name)
            row.append(value)
        unexpected = [k for k in values if k not in self._known]
        if not missing and not mistyped and not unexpected:
            return row, None
        problems: dict[str, Any] = {}
        if missing:
            _report(problems, "missing", missing)
        if unexpected:
            _report(problems, "unexpected", [_name(k) for k in unexpected[:MAX_REPORTED_NAMES]])
            if len(unexpected) > MAX_REPORTED_NAMES:
                problems["unexpected_count"] = len(unexpected)
        if mistyped:
            shown = dict(list(mistyped.items())[:MAX_REPORTED_NAMES])
            problems["mistyped"] = shown
            if len(mistyped) > MAX_REPORTED_NAMES:
                problems["mistyped_count"] = len(mistyped)
            bad_categories = {
                name: self._categories[name] for name in shown if name in self._categories
            }
            if bad_categories:
                problems["allowed_categories"] = bad_categories
        return row, problems


def _report(problems: dict[str, Any], key: str, names: list[str]) -> None:
    """The first ``MAX_REPORTED_NAMES`` names, and how many there are when there are more."""
    problems[key] = names[:MAX_REPORTED_NAMES]
    if len(names) > MAX_REPORTED_NAMES:
        problems[f"{key}_count"] = len(names)


def _name(name: str) -> str:
    return name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS] + "…"


def _range_problem(value: float) -> str | None:
    if -FLOAT32_MAX <= value <= FLOAT32_MAX:  # also false for NaN
        return None
    return f"out of range: a finite number between {-FLOAT32_MAX:.4g} and {FLOAT32_MAX:.4g}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_problem(ftype: FeatureType, value: Any, allowed: frozenset[str] | None) -> str | None:
    kind = type(value)
    if ftype is FeatureType.NUMBER:
        if kind is float or kind is int:
            return _range_problem(value)
        return f"expected a number, got {_kind(value)}"
    if ftype is FeatureType.INTEGER:
        if kind is int or (kind is float and value.is_integer()):
            return _range_problem(value)
        return f"expected an integer, got {_kind(value)}"
    if ftype is FeatureType.BOOLEAN:
        if kind is bool:
            return None
        return f"expected a boolean, got {_kind(value)}"
    if kind is str:
        text = value
    elif kind is int:
        text = str(value)
    else:
        return f"expected a category (string), got {_kind(value)}"
    if allowed is not None and text not in allowed:
        return f"unknown category {_name(text)!r}"
    return None


def _summary(problems: dict[str, Any]) -> str:
    parts = []
    for key in ("missing", "unexpected", "mistyped"):
        if key in problems:
            names = list(problems[key])
            more = problems.get(f"{key}_count", len(names)) - len(names)
            parts.append(f"{key}: " + ", ".join(names) + (f" (and {more} more)" if more else ""))
    if "not_an_object" in problems:
        parts.append(str(problems["not_an_object"]))
    return "invalid input (" + "; ".join(parts) + ")"
