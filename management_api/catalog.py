"""Models and their versions: listing, ownership, saving trained or uploaded versions, deleting."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import skops.io as sio
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from management_api.accounts import Principal
from management_api.db import ExportedApi, Model, ModelVersion, new_id, utcnow
from management_api.errors import Conflict, InvalidInput, NotFound
from management_api.training import TrainedModel, example_prediction
from predictor.model_store import (
    InvalidModelError,
    ModelStore,
    UntrustedModelError,
    check_skops_file,
    trusted_types_of,
)
from schemas import FeatureSpec, FeatureType, Task
from schemas.resources import ModelPublic, ModelUploadForm, ModelVersionPublic

log = logging.getLogger(__name__)


def owned_models(principal: Principal) -> Select[Model]:
    query = select(Model)
    if not principal.is_admin:
        query = query.where(Model.owner_id == principal.user_id)
    return query


def version_public(version: ModelVersion) -> ModelVersionPublic:
    return ModelVersionPublic(
        id=version.id,
        number=version.number,
        model_id=version.model_id,
        algorithm=version.algorithm,
        params=version.params,
        metrics=version.metrics,
        features=[FeatureSpec.model_validate(f) for f in version.features],
        classes=version.classes,
        target=version.target,
        n_train=version.n_train,
        n_test=version.n_test,
        created_at=version.created_at,
        source=version.source,
    )


def model_public(model: Model) -> ModelPublic:
    versions = sorted(model.versions, key=lambda v: v.number)
    return ModelPublic(
        id=model.id,
        name=model.name,
        task=Task(model.task),
        owner_id=model.owner_id,
        created_at=model.created_at,
        latest_version=versions[-1].number if versions else 0,
        versions=[version_public(v) for v in versions],
    )


def placeholder_example(features: list[FeatureSpec]) -> dict[str, Any]:
    """An example request from a schema alone (uploaded models have no held-out row)."""
    values: dict[FeatureType, Any] = {
        FeatureType.NUMBER: 0.0,
        FeatureType.INTEGER: 0,
        FeatureType.BOOLEAN: False,
    }
    return {
        f.name: (f.categories[0] if f.categories else "")
        if f.type == FeatureType.CATEGORY
        else values[f.type]
        for f in features
    }


class Catalog:
    """Models per owner, versions numbered per model name, artifacts in the model store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: ModelStore) -> None:
        self._sessions = sessions
        self.store = store

    async def list_models(self, principal: Principal) -> list[ModelPublic]:
        async with self._sessions() as session:
            models = (
                await session.scalars(owned_models(principal).order_by(Model.created_at.desc()))
            ).all()
            return [model_public(m) for m in models]

    async def _owned(self, session: AsyncSession, principal: Principal, model_id: str) -> Model:
        model = await session.scalar(owned_models(principal).where(Model.id == model_id))
        if model is None:
            raise NotFound("no such model", details={"model_id": model_id})
        return model

    async def get(self, principal: Principal, model_id: str) -> ModelPublic:
        async with self._sessions() as session:
            return model_public(await self._owned(session, principal, model_id))

    async def check_name(self, owner_id: str, name: str, task: Task) -> None:
        """Refuse early a new version whose task differs from the existing model of that name."""
        async with self._sessions() as session:
            model = await session.scalar(
                select(Model).where(Model.owner_id == owner_id, Model.name == name)
            )
        if model is not None and model.task != task:
            raise InvalidInput(
                f"model {name!r} is a {model.task} model; a new version must be {model.task} too "
                "(or choose another name)",
                details={"name": name, "task": model.task},
            )

    async def add_version(
        self,
        owner_id: str,
        name: str,
        trained: TrainedModel,
        source: str,
        example: dict[str, Any] | None = None,
    ) -> tuple[Model, ModelVersion]:
        """Save the artifact, then record a new version (number = previous + 1) of ``name``."""
        version_id = new_id()
        if example is None:
            output = await asyncio.to_thread(example_prediction, trained)
            example = {"input": trained.example, "output": output}
        for _attempt in range(5):
            async with self._sessions() as session:
                model = await session.scalar(
                    select(Model).where(Model.owner_id == owner_id, Model.name == name)
                )
                if model is None:
                    model = Model(
                        id=new_id(), owner_id=owner_id, name=name, task=trained.task.value
                    )
                    session.add(model)
                    await session.flush()
                elif model.task != trained.task.value:
                    raise InvalidInput(
                        f"model {name!r} is a {model.task} model; "
                        f"a new version must be {model.task} too",
                        details={"name": name, "task": model.task},
                    )
                number = (
                    int(
                        await session.scalar(
                            select(func.coalesce(func.max(ModelVersion.number), 0)).where(
                                ModelVersion.model_id == model.id
                            )
                        )
                        or 0
                    )
                    + 1
                )
                metadata = {
                    "model_id": model.id,
                    "model_name": name,
                    "version_number": number,
                    "task": trained.task.value,
                    "algorithm": trained.algorithm,
                    "features": [f.model_dump(mode="json") for f in trained.features],
                    "classes": trained.classes,
                    "target": trained.target,
                    "metrics": trained.metrics,
                    "created_at": utcnow().isoformat(),
                }
                # Saved on every attempt (atomically replacing the last) so the stored
                # metadata carries the number this attempt commits, not a lost race's.
                await asyncio.to_thread(self.store.save, version_id, trained.estimator, metadata)
                version = ModelVersion(
                    id=version_id,
                    model_id=model.id,
                    number=number,
                    algorithm=trained.algorithm,
                    params=trained.params,
                    metrics=trained.metrics,
                    features=[f.model_dump(mode="json") for f in trained.features],
                    classes=trained.classes,
                    target=trained.target,
                    n_train=trained.n_train,
                    n_test=trained.n_test,
                    source=source,
                    example=example,
                )
                session.add(version)
                try:
                    await session.commit()
                except IntegrityError:
                    # Two versions of one name finished at once: take the next number.
                    await session.rollback()
                    continue
                await session.refresh(model, ["versions"])
                return model, version
        raise Conflict(f"could not number a new version of {name!r}; retry")

    async def upload(self, principal: Principal, form: ModelUploadForm, data: bytes) -> ModelPublic:
        """Accept a ready skops model with its feature schema, refusing untrusted types."""
        if form.task == Task.CLASSIFICATION and not form.classes:
            raise InvalidInput(
                "a classification model needs its classes", details={"field": "classes"}
            )
        names = [f.name for f in form.features]
        if len(set(names)) != len(names):
            raise InvalidInput("feature names must be unique", details={"features": names})
        await self.check_name(principal.user_id, form.name, form.task)
        estimator = await asyncio.to_thread(load_upload, data)
        if not hasattr(estimator, "predict"):
            raise InvalidInput("the uploaded object is not a model: it has no predict() method")
        trained = TrainedModel(
            estimator=estimator,
            task=form.task,
            algorithm=type(estimator).__name__,
            params={},
            features=form.features,
            classes=form.classes,
            metrics={},
            target=form.target,
            n_train=0,
            n_test=0,
        )
        example = {"input": placeholder_example(form.features), "output": None}
        model, _ = await self.add_version(principal.user_id, form.name, trained, "upload", example)
        return model_public(model)

    async def delete(self, principal: Principal, model_id: str) -> None:
        async with self._sessions() as session:
            model = await self._owned(session, principal, model_id)
            serving = await session.scalar(
                select(func.count())
                .select_from(ExportedApi)
                .where(ExportedApi.model_id == model.id)
            )
            if serving:
                raise Conflict(
                    "this model is served by exported APIs; delete them first",
                    details={"model_id": model_id, "apis": int(serving)},
                )
            version_ids = [v.id for v in model.versions]
            await session.delete(model)
            await session.commit()
        for version_id in version_ids:
            await asyncio.to_thread(self.store.delete, version_id)


def load_upload(data: bytes) -> Any:
    """Load an uploaded skops file after checking every type in it is allowed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.skops"
        path.write_bytes(data)
        try:
            check_skops_file(path)
            return sio.load(path, trusted=trusted_types_of(path))
        except UntrustedModelError as exc:
            raise InvalidInput(
                "the model contains types that are not allowed (only scikit-learn, numpy, scipy)",
                details={"untrusted_types": exc.untrusted_types},
            ) from exc
        except InvalidModelError as exc:
            raise InvalidInput(f"not a valid skops file: {exc}") from exc
        except Exception as exc:
            raise InvalidInput(f"cannot load the skops file: {exc}") from exc
