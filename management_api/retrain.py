"""Retraining an API's model (issue 15): a training job on the served version's recipe, optionally
with the ground truth sent as feedback joined to the inputs ingress logged.

The recipe is read from what the served version recorded: its source (``builtin:<dataset>`` or
``csv:<file>``), its algorithm and resolved parameters, and its train/test sizes (the test share
they were split with). A version trained from a CSV keeps that CSV beside its model in the store
(``training.csv``, its hash in the version's metadata, checked on every read) with how it was read
(target, dropped and typed columns, test share): it is retrained on the same bytes. A CSV version
saved before CSVs were kept, one whose kept CSV no longer matches its hash, and an uploaded
version cannot be retrained (409 ``RECIPE_UNAVAILABLE``). Every check (and the feedback query)
happens before the job is queued, so a refusal queues nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.model_store import ModelStore, UnverifiedModelError
from management_api.accounts import Principal
from management_api.catalog import TRAINING_RECIPE_KEY
from management_api.datasets import DATASETS, ColumnChoices
from management_api.db import ExportedApi, Model, ModelVersion
from management_api.drift import QUERY_SETTINGS
from management_api.errors import Conflict, NotFound, ServiceUnavailable
from management_api.exports import owned_apis
from management_api.jobs import TrainingJobs
from management_api.queries import MonitoringQueries
from management_api.reference import boolean_label
from schemas import FeatureSpec, FeatureType, ImageSpec, Task
from schemas.resources import Role, TrainingJob

log = logging.getLogger(__name__)

RECIPE_UNAVAILABLE = "RECIPE_UNAVAILABLE"
NO_FEEDBACK = "NO_FEEDBACK"
MAX_FEEDBACK_ROWS = 100_000
MAX_FEEDBACK_CELLS = 1_000_000
"""Values (rows times features and target) of feedback rows one retrain holds: they sit in the
API's memory as dicts until the job runs, about 100 bytes each."""
INPUT_BYTES_PER_FEATURE = 256
"""Longest logged input read per feature (plus one feature's worth): a single object of the
features is far shorter; a longer one carries other keys, which retraining drops anyway, and
ingress logs bodies of up to a megabyte."""


def feedback_limits(features: int, max_rows: int) -> tuple[int, int]:
    """Feedback rows one retrain reads at most, and the longest logged input it reads."""
    rows = min(MAX_FEEDBACK_ROWS, max_rows, MAX_FEEDBACK_CELLS // (features + 1))
    return max(1, rows), INPUT_BYTES_PER_FEATURE * (features + 1)


@dataclass(frozen=True)
class Recipe:
    """How a version was trained, enough to train it again."""

    dataset: str
    """A built-in dataset's name; ``""`` for a version trained from a kept CSV."""
    algorithm: str
    params: dict[str, Any]
    test_size: float
    csv: bytes | None = None
    """The kept CSV's bytes (verified against the hash recorded when the version was saved)."""
    filename: str = ""
    target: str = "target"
    choices: ColumnChoices = field(default_factory=ColumnChoices)


def split_share_of(n_train: int, n_test: int) -> float:
    """The test share a split of ``n_train + n_test`` rows into ``n_test`` held-out rows was made
    with: the shortest decimal ``t`` with ``ceil(t * n) == n_test`` (scikit-learn's rounding)."""
    n = n_train + n_test
    if n <= 0 or n_test <= 0:
        return 0.2
    for digits in range(1, 7):
        step = 10.0**-digits
        low = math.floor((n_test - 1) / n / step) * step
        for k in range(0, 12):
            t = round(low + k * step, digits)
            if 0.05 < t < 0.9 and math.ceil(round(t * n, 9)) == n_test:
                return t
    return round(min(0.89, max(0.051, n_test / n)), 6)


def csv_recipe(version: ModelVersion, name: str, store: ModelStore) -> Recipe | None:
    """A CSV version's recipe from its kept CSV (``None``: saved before CSVs were kept); a kept
    CSV that does not match its recorded hash is refused (409), never trained on. Blocking."""
    try:
        data = store.training_csv(version.id)
    except UnverifiedModelError as exc:
        log.warning("retrain refused: %s", exc)
        raise Conflict(
            f"the CSV {name!r} kept for version {version.number} no longer matches the one it "
            "was trained on (it changed on disk, or is gone), so it is not trained on again; "
            "train a new version from the CSV (the training wizard) instead",
            code=RECIPE_UNAVAILABLE,
            details={"version": version.number, "source": f"csv:{name}"[:200], "csv": "changed"},
        ) from exc
    kept = store.metadata(version.id).get(TRAINING_RECIPE_KEY)
    if data is None or not isinstance(kept, dict):
        return None
    return Recipe(
        dataset="",
        algorithm=version.algorithm,
        params=dict(version.params or {}),
        test_size=float(kept.get("test_size") or split_share_of(version.n_train, version.n_test)),
        csv=data,
        filename=name,
        target=str(kept.get("target") or version.target),
        choices=ColumnChoices.of_job(kept),
    )


def recipe_of(version: ModelVersion, store: ModelStore | None = None) -> Recipe:
    """The served version's recipe, or 409 ``RECIPE_UNAVAILABLE`` saying why there is none
    (a CSV version's kept CSV is read from ``store``: call it off the event loop)."""
    source = version.source or ""
    kind, _, name = source.partition(":")
    if kind == "builtin" and name in DATASETS:
        return Recipe(
            dataset=name,
            algorithm=version.algorithm,
            params=dict(version.params or {}),
            test_size=split_share_of(version.n_train, version.n_test),
        )
    if kind == "csv":
        recipe = None if store is None else csv_recipe(version, name, store)
        if recipe is not None:
            return recipe
        reason = (
            f"version {version.number} was trained from the CSV {name!r} before modelgate kept "
            "training CSVs, so its CSV was not kept; train a new version from the CSV (the "
            "training wizard) instead"
        )
    elif source == "upload":
        reason = (
            f"version {version.number} was uploaded, not trained here; upload a new version instead"
        )
    else:
        reason = f"version {version.number} records no recipe it can be trained again from"
    raise Conflict(
        reason,
        code=RECIPE_UNAVAILABLE,
        details={"version": version.number, "source": source[:200]},
    )


def feedback_rows_sql(database: str) -> str:
    """The latest ``actual`` per request of an API joined with the request's logged input (only
    the events that have feedback are read: the event id's bloom filter skips the rest). The
    logged inputs are the join's in-memory side: at most ``limit`` of them are read (``LIMIT 1
    BY`` keeps one per event without aggregating every input first), not every input that ever
    got feedback."""
    return f"""
SELECT e.logged_input AS input, f.actual AS actual
FROM (
    SELECT request_id, argMax(actual, received_at) AS actual
    FROM {database}.feedback
    WHERE api_id = {{api_id:String}}
    GROUP BY request_id
) AS f
INNER JOIN (
    SELECT event_id, input AS logged_input
    FROM {database}.request_events
    WHERE api_id = {{api_id:String}} AND status_code = 200 AND input != ''
        AND length(input) <= {{max_input_bytes:UInt32}}
        AND event_id IN (
            SELECT request_id FROM {database}.feedback WHERE api_id = {{api_id:String}}
        )
    LIMIT 1 BY event_id
    LIMIT {{limit:UInt32}}
) AS e ON e.event_id = f.request_id
LIMIT {{limit:UInt32}}
"""


def rows_of(found: list[dict[str, Any]], features: list[str], target: str) -> list[dict[str, Any]]:
    """Training rows from logged inputs (one JSON object each) and their actual values; inputs
    that are not one object of the version's features (a batch, an image) are left out."""
    names = set(features)
    rows: list[dict[str, Any]] = []
    for item in found:
        try:
            data = orjson.loads(item["input"])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict) or not names.intersection(data):
            continue
        row = {k: v for k, v in data.items() if k in names and not isinstance(v, (dict, list))}
        if not row:
            continue
        row[target] = item["actual"]
        rows.append(row)
    return rows


def _fits(value: Any, spec: FeatureSpec) -> bool:
    """Whether a logged value can be a training value of ``spec`` without changing its type."""
    if spec.type in (FeatureType.NUMBER, FeatureType.INTEGER):
        if isinstance(value, bool):
            return False
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return False
        return math.isfinite(number) and (spec.type != FeatureType.INTEGER or number % 1 == 0)
    if spec.type == FeatureType.BOOLEAN:
        return boolean_label(value) is not None
    return value is not None and (not spec.categories or str(value).strip() in spec.categories)


def _target_fits(actual: Any, task: Task, classes: Collection[str] | None) -> bool:
    if task == Task.REGRESSION:
        try:
            return math.isfinite(float(actual))
        except (TypeError, ValueError, OverflowError):
            return False
    return actual is not None and (classes is None or str(actual) in classes)


def fitting_rows(
    rows: list[dict[str, Any]],
    specs: Sequence[FeatureSpec],
    target: str,
    task: Task,
    classes: Collection[str] | None,
) -> list[dict[str, Any]]:
    """The feedback rows that fit the served version: every required feature present, every
    value of its feature's type, the truth one of the version's classes (classification) or a
    finite number (regression). Feedback comes from whoever holds an API key, so anything else
    would change the retrained version's classes or feature types, or fail its training."""
    known = None if classes is None else {str(c) for c in classes}
    return [
        row
        for row in rows
        if _target_fits(row.get(target), task, known)
        and all(_fits(row[s.name], s) if s.name in row else not s.required for s in specs)
    ]


async def feedback_rows(
    queries: MonitoringQueries,
    api_id: str,
    features: list[str],
    target: str,
    limit: int,
    max_input_bytes: int = 1024 * 1024,
) -> list[dict[str, Any]]:
    """An API's feedback rows as training rows (503 if ClickHouse cannot answer): at most
    ``limit``, from logged inputs of at most ``max_input_bytes``."""
    database = queries.database
    try:
        exists = await queries.client.query(f"EXISTS TABLE {database}.feedback", parameters={})
        if not exists.result_rows or not exists.result_rows[0][0]:
            raise Conflict(
                "no feedback is stored on this deployment (its ClickHouse has no feedback "
                "table); retrain without include_feedback",
                code=NO_FEEDBACK,
            )
        result = await queries.client.query(
            feedback_rows_sql(database),
            parameters={"api_id": api_id, "limit": limit, "max_input_bytes": max_input_bytes},
            settings=QUERY_SETTINGS,
        )
        found = list(result.named_results())
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise ServiceUnavailable(
            "the monitoring store (ClickHouse) is unavailable; retry shortly"
        ) from exc
    return await asyncio.to_thread(rows_of, found, features, target)


async def retrain(
    sessions: async_sessionmaker[AsyncSession],
    jobs: TrainingJobs,
    queries: MonitoringQueries | None,
    principal: Principal,
    api_id: str,
    include_feedback: bool,
) -> TrainingJob:
    """Queue a job training the next version of the API's model on its served version's recipe
    (the API's owner owns the job and the version, whoever of the owner or an admin asked)."""
    async with sessions() as session:
        api = await session.scalar(owned_apis(principal).where(ExportedApi.id == api_id))
        if api is None:
            raise NotFound("no such API", details={"api_id": api_id})
        model = await session.get(Model, api.model_id)
        version = await session.get(ModelVersion, api.model_version_id)
        if model is None or version is None:
            raise Conflict(
                "this API serves no model version any more; export the model again",
                code=RECIPE_UNAVAILABLE,
                details={"api_id": api_id},
            )
        owner_id, model_name, log_payloads = api.owner_id, model.name, api.log_payloads
        task = model.task
    recipe = await asyncio.to_thread(recipe_of, version, jobs.store)
    extra: list[dict[str, Any]] | None = None
    if include_feedback:
        if queries is None:
            raise ServiceUnavailable("the monitoring store (ClickHouse) is not configured")
        specs = [FeatureSpec.model_validate(f) for f in version.features]
        limit, max_input_bytes = feedback_limits(len(specs), jobs.limits.csv.max_rows)
        joined = await feedback_rows(
            queries, api_id, [s.name for s in specs], recipe.target, limit, max_input_bytes
        )
        extra = await asyncio.to_thread(
            fitting_rows, joined, specs, recipe.target, Task(task), version.classes
        )
        if joined and not extra:
            raise Conflict(
                f"none of the {len(joined)} feedback rows fits version {version.number}: each "
                "has a truth that is not one of its classes (or not a number), or a feature "
                "value of the wrong type; retrain without include_feedback",
                code=NO_FEEDBACK,
                details={"api_id": api_id, "joined": len(joined)},
            )
        if not extra:
            raise Conflict(
                "no feedback can be joined to a logged input of this API yet"
                + ("" if log_payloads else " (payload logging is off: inputs are not kept)")
                + "; send feedback for answered requests, or retrain without it",
                code=NO_FEEDBACK,
                details={"api_id": api_id, "log_payloads": log_payloads},
            )
    owner = (
        principal
        if principal.user_id == owner_id
        else Principal(user_id=owner_id, username="", role=Role.USER)
    )
    if recipe.csv is not None:
        return await jobs.submit_csv(
            owner,
            model_name,
            recipe.csv,
            recipe.filename,
            recipe.target,
            recipe.algorithm,
            recipe.params,
            Task(task),
            recipe.test_size,
            recipe.choices,
            None if version.image is None else ImageSpec.model_validate(version.image),
            extra_rows=extra,
        )
    return await jobs.submit_builtin(
        owner,
        model_name,
        recipe.dataset,
        recipe.algorithm,
        recipe.params,
        recipe.test_size,
        extra_rows=extra,
    )
