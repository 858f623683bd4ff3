"""The algorithm catalogue: what each algorithm trains, its parameters with their bounds, and
the estimator it builds; ``resolve_params`` checks a request against it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression

from management_api.datasets import TrainingError
from schemas import Task
from schemas.resources import AlgorithmInfo, AlgorithmParam


@dataclass(frozen=True)
class Algorithm:
    name: str
    label: str
    tasks: tuple[Task, ...]
    params: tuple[AlgorithmParam, ...]
    build: Callable[[Task, dict[str, Any]], Any]

    def info(self) -> AlgorithmInfo:
        return AlgorithmInfo(
            name=self.name, label=self.label, tasks=list(self.tasks), params=list(self.params)
        )


def _forest(task: Task, p: dict[str, Any]) -> Any:
    cls = RandomForestClassifier if task == Task.CLASSIFICATION else RandomForestRegressor
    return cls(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"] or None,
        min_samples_leaf=p["min_samples_leaf"],
        random_state=0,
    )


def _boosting(task: Task, p: dict[str, Any]) -> Any:
    cls = GradientBoostingClassifier if task == Task.CLASSIFICATION else GradientBoostingRegressor
    return cls(
        n_estimators=p["n_estimators"],
        learning_rate=p["learning_rate"],
        max_depth=p["max_depth"],
        random_state=0,
    )


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        Algorithm(
            "logistic_regression",
            "Logistic regression",
            (Task.CLASSIFICATION,),
            (
                AlgorithmParam(
                    name="C",
                    type="float",
                    default=1.0,
                    min=1e-4,
                    max=1e4,
                    description="inverse regularisation strength",
                ),
                AlgorithmParam(
                    name="max_iter",
                    type="int",
                    default=1000,
                    min=10,
                    max=10000,
                    description="solver iterations",
                ),
            ),
            lambda task, p: LogisticRegression(C=p["C"], max_iter=p["max_iter"]),
        ),
        Algorithm(
            "linear_regression",
            "Linear regression",
            (Task.REGRESSION,),
            (
                AlgorithmParam(
                    name="fit_intercept",
                    type="choice",
                    default=True,
                    choices=[True, False],
                    description="fit an intercept",
                ),
            ),
            lambda task, p: LinearRegression(fit_intercept=p["fit_intercept"]),
        ),
        Algorithm(
            "random_forest",
            "Random forest",
            (Task.CLASSIFICATION, Task.REGRESSION),
            (
                AlgorithmParam(
                    name="n_estimators",
                    type="int",
                    default=100,
                    min=1,
                    max=1000,
                    description="trees",
                ),
                AlgorithmParam(
                    name="max_depth",
                    type="int",
                    default=0,
                    min=0,
                    max=100,
                    description="tree depth (0 = unlimited)",
                ),
                AlgorithmParam(
                    name="min_samples_leaf",
                    type="int",
                    default=1,
                    min=1,
                    max=1000,
                    description="rows per leaf",
                ),
            ),
            _forest,
        ),
        Algorithm(
            "gradient_boosting",
            "Gradient boosting",
            (Task.CLASSIFICATION, Task.REGRESSION),
            (
                AlgorithmParam(
                    name="n_estimators",
                    type="int",
                    default=100,
                    min=1,
                    max=1000,
                    description="boosting stages",
                ),
                AlgorithmParam(
                    name="learning_rate",
                    type="float",
                    default=0.1,
                    min=1e-4,
                    max=1.0,
                    description="shrinkage",
                ),
                AlgorithmParam(
                    name="max_depth", type="int", default=3, min=1, max=20, description="tree depth"
                ),
            ),
            _boosting,
        ),
    ]
}


def resolve_params(
    algorithm: str, task: Task, given: dict[str, Any]
) -> tuple[Algorithm, dict[str, Any]]:
    """Check the algorithm fits the task and coerce its parameters; errors name every problem."""
    algo = ALGORITHMS.get(algorithm)
    if algo is None:
        raise TrainingError(f"unknown algorithm {algorithm!r}", {"known": sorted(ALGORITHMS)})
    if task not in algo.tasks:
        raise TrainingError(
            f"{algo.label} does not do {task.value}",
            {
                "algorithm": algorithm,
                "task": task.value,
                "supported_tasks": [t.value for t in algo.tasks],
            },
        )
    known = {p.name: p for p in algo.params}
    problems: dict[str, str] = {}
    for name in given:
        if name not in known:
            problems[name] = "unknown parameter"
    resolved: dict[str, Any] = {}
    for name, spec in known.items():
        value: Any = given.get(name, spec.default)
        try:
            if spec.type == "int":
                if isinstance(value, bool) or float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif spec.type == "float":
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError
            elif spec.choices is not None and value not in spec.choices:
                raise ValueError
        except (TypeError, ValueError):
            problems[name] = f"expected {spec.type}" + (
                f" in {spec.choices}" if spec.choices else ""
            )
            continue
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            problems[name] = f"must be between {spec.min} and {spec.max}"
            continue
        resolved[name] = value
    if problems:
        raise TrainingError("invalid algorithm parameters", {"params": problems})
    return algo, resolved
