"""Exported APIs: create, list, change, rotate keys, deploy versions, delete; every change is
published as an ``ApiChanged`` so ingress follows without a restart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from management_api.accounts import Principal
from management_api.catalog import owned_models
from management_api.db import ExportedApi, Model, ModelVersion, new_id, utcnow
from management_api.errors import Conflict, NotFound
from management_api.security import generate_api_key
from schemas import ApiChanged, ApiChangeKind, ApiRecord, ApiStatus, FeatureSpec, Task
from schemas.resources import (
    AlertThresholds,
    AlertThresholdsUpdate,
    ApiCreate,
    ApiCreated,
    ApiKeyRotated,
    ApiPublic,
    ApiUpdate,
)

# Must not raise: the change is already committed (``ChangeAnnouncer.announce`` retries on its own).
ChangePublisher = Callable[[ApiChanged], Awaitable[None]]


@dataclass(frozen=True)
class ApiFilter:
    """Filters of the API list: status, model, and a text matched against API and model names."""

    status: ApiStatus | None = None
    model_id: str | None = None
    q: str | None = None


# What ``Exports.public`` reads: the model's name and task and the version's number, not every
# version's schema, metrics and examples (which a list of 100 APIs would otherwise decode).
LIGHT = (
    joinedload(ExportedApi.model).load_only(Model.name, Model.task).lazyload(Model.versions),
    joinedload(ExportedApi.version).load_only(ModelVersion.number),
)


def owned_apis(principal: Principal) -> Select[ExportedApi]:
    query = select(ExportedApi)
    if not principal.is_admin:
        query = query.where(ExportedApi.owner_id == principal.user_id)
    return query


def record_of(api: ExportedApi) -> ApiRecord:
    """What ingress and predictors need to serve an API (the key only as its hash)."""
    version = api.version
    return ApiRecord(
        api_id=api.id,
        name=api.name,
        owner_id=api.owner_id,
        key_hash=api.key_hash,
        key_prefix=api.key_prefix,
        status=ApiStatus(api.status),
        model_id=api.model_id,
        model_name=api.model.name,
        model_version=version.id,
        model_version_number=version.number,
        task=Task(api.model.task),
        features=[FeatureSpec.model_validate(f) for f in version.features],
        classes=version.classes,
        rate_limit_per_minute=api.rate_limit_per_minute,
        log_payloads=api.log_payloads,
        updated_at=api.updated_at,
    )


class Exports:
    """The export lifecycle over the metadata DB, announcing every change on ``control``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publish: ChangePublisher,
        public_ingress_url: str,
        default_thresholds: AlertThresholds,
    ) -> None:
        self._sessions = sessions
        self._publish = publish
        self._ingress = public_ingress_url.rstrip("/")
        self.default_thresholds = default_thresholds

    def endpoint_url(self, api_id: str) -> str:
        return f"{self._ingress}/api/predict/{api_id}"

    def thresholds_of(self, api: ExportedApi) -> AlertThresholds:
        return AlertThresholds.model_validate(
            {**self.default_thresholds.model_dump(), **(api.alert_thresholds or {})}
        )

    def public(self, api: ExportedApi) -> ApiPublic:
        return ApiPublic(
            id=api.id,
            name=api.name,
            model_id=api.model_id,
            model_name=api.model.name,
            model_version=api.version.number,
            model_version_id=api.model_version_id,
            task=Task(api.model.task),
            status=ApiStatus(api.status),
            endpoint_url=self.endpoint_url(api.id),
            key_prefix=api.key_prefix,
            created_at=api.created_at,
            updated_at=api.updated_at,
            rate_limit_per_minute=api.rate_limit_per_minute,
            log_payloads=api.log_payloads,
            alert_thresholds=self.thresholds_of(api),
        )

    async def _announce(self, kind: ApiChangeKind, api_id: str, record: ApiRecord | None) -> None:
        await self._publish(ApiChanged(kind=kind, api_id=api_id, api=record))

    async def _owned(self, session: AsyncSession, principal: Principal, api_id: str) -> ExportedApi:
        api = await session.scalar(owned_apis(principal).where(ExportedApi.id == api_id))
        if api is None:
            raise NotFound("no such API", details={"api_id": api_id})
        return api

    async def create(self, principal: Principal, model_id: str, body: ApiCreate) -> ApiCreated:
        async with self._sessions() as session:
            model = await session.scalar(owned_models(principal).where(Model.id == model_id))
            if model is None:
                raise NotFound("no such model", details={"model_id": model_id})
            version = pick_version(model, body.version)
            key = generate_api_key()
            thresholds = (body.alert_thresholds or AlertThresholdsUpdate()).model_dump(
                exclude_none=True
            )
            now = utcnow()
            api = ExportedApi(
                id=new_id(),
                owner_id=model.owner_id,
                model_id=model.id,
                model_version_id=version.id,
                name=body.name or model.name,
                status=ApiStatus.ACTIVE,
                key_hash=key.key_hash,
                key_prefix=key.prefix,
                rate_limit_per_minute=body.rate_limit_per_minute,
                log_payloads=body.log_payloads,
                alert_thresholds=thresholds,
                created_at=now,
                updated_at=now,
            )
            session.add(api)
            await session.commit()
            api = await self._owned(session, principal, api.id)
            record, public = record_of(api), self.public(api)
        await self._announce(ApiChangeKind.CREATED, api.id, record)
        return ApiCreated(api=public, api_key=key.key, api_url=public.endpoint_url)

    async def search(self, principal: Principal, filters: ApiFilter) -> list[ApiPublic]:
        query = owned_apis(principal).join(ExportedApi.model).options(*LIGHT)
        if filters.status is not None:
            query = query.where(ExportedApi.status == filters.status.value)
        if filters.model_id:
            query = query.where(ExportedApi.model_id == filters.model_id)
        if filters.q:
            pattern = f"%{filters.q.lower()}%"
            query = query.where(
                or_(
                    ExportedApi.name.ilike(pattern),
                    Model.name.ilike(pattern),
                    ExportedApi.id == filters.q,
                )
            )
        async with self._sessions() as session:
            apis = (
                (await session.scalars(query.order_by(ExportedApi.created_at.desc())))
                .unique()
                .all()
            )
            return [self.public(api) for api in apis]

    async def get(self, principal: Principal, api_id: str) -> ApiPublic:
        query = owned_apis(principal).where(ExportedApi.id == api_id).options(*LIGHT)
        async with self._sessions() as session:
            api = await session.scalar(query)
            if api is None:
                raise NotFound("no such API", details={"api_id": api_id})
            return self.public(api)

    async def details(self, principal: Principal, api_id: str) -> tuple[ApiPublic, ModelVersion]:
        """The API and its deployed version (for the per-API docs)."""
        async with self._sessions() as session:
            api = await self._owned(session, principal, api_id)
            return self.public(api), api.version

    async def _change(
        self,
        principal: Principal,
        api_id: str,
        kind: ApiChangeKind,
        apply: Callable[[AsyncSession, ExportedApi], Awaitable[Any]],
    ) -> tuple[ApiPublic, Any]:
        async with self._sessions() as session:
            api = await self._owned(session, principal, api_id)
            result = await apply(session, api)
            api.updated_at = utcnow()
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict("the change conflicts with another one; retry") from exc
            api = await self._owned(session, principal, api_id)
            await session.refresh(api)
            record, public = record_of(api), self.public(api)
        await self._announce(kind, api_id, record)
        return public, result

    async def update(self, principal: Principal, api_id: str, body: ApiUpdate) -> ApiPublic:
        async def apply(_: AsyncSession, api: ExportedApi) -> None:
            if body.name is not None:
                api.name = body.name
            if body.rate_limit_per_minute is not None:
                api.rate_limit_per_minute = body.rate_limit_per_minute
            if body.log_payloads is not None:
                api.log_payloads = body.log_payloads
            if body.alert_thresholds is not None:
                merged = {
                    **(api.alert_thresholds or {}),
                    **body.alert_thresholds.model_dump(exclude_none=True),
                }
                api.alert_thresholds = merged

        public, _ = await self._change(principal, api_id, ApiChangeKind.UPDATED, apply)
        return public

    async def set_status(self, principal: Principal, api_id: str, status: ApiStatus) -> ApiPublic:
        async def apply(_: AsyncSession, api: ExportedApi) -> None:
            api.status = status.value

        public, _ = await self._change(principal, api_id, ApiChangeKind.STATUS, apply)
        return public

    async def regenerate_key(self, principal: Principal, api_id: str) -> ApiKeyRotated:
        key = generate_api_key()

        async def apply(_: AsyncSession, api: ExportedApi) -> None:
            api.key_hash, api.key_prefix = key.key_hash, key.prefix

        public, _ = await self._change(principal, api_id, ApiChangeKind.KEY_ROTATED, apply)
        return ApiKeyRotated(api=public, api_key=key.key)

    async def deploy(self, principal: Principal, api_id: str, number: int) -> ApiPublic:
        async def apply(session: AsyncSession, api: ExportedApi) -> None:
            model = await session.get(Model, api.model_id)
            assert model is not None
            api.model_version_id = pick_version(model, number).id

        public, _ = await self._change(principal, api_id, ApiChangeKind.DEPLOYED, apply)
        return public

    async def delete(self, principal: Principal, api_id: str) -> None:
        async with self._sessions() as session:
            api = await self._owned(session, principal, api_id)
            await session.delete(api)
            await session.commit()
        await self._announce(ApiChangeKind.DELETED, api_id, None)

    async def records(self) -> list[ApiRecord]:
        """Every API as a registry record (the snapshot RPC's source)."""
        async with self._sessions() as session:
            apis = (await session.scalars(select(ExportedApi))).unique().all()
            return [record_of(api) for api in apis]


def pick_version(model: Model, number: int | None) -> ModelVersion:
    if not model.versions:
        raise Conflict("this model has no version to serve yet", details={"model_id": model.id})
    if number is None:
        return max(model.versions, key=lambda v: v.number)
    for version in model.versions:
        if version.number == number:
            return version
    raise NotFound(
        f"model {model.name!r} has no version {number}",
        details={"model_id": model.id, "versions": sorted(v.number for v in model.versions)},
    )
