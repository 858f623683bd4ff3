"""Exported APIs: create, list, change, rotate keys, deploy versions, delete; every change is
published as an ``ApiChanged`` so ingress follows without a restart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Select, or_, select, update
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from management_api.accounts import Principal
from management_api.alert_engine import DEFAULT_RULES, default_rule_rows
from management_api.apidocs import curl_example, example_input
from management_api.catalog import owned_models
from management_api.compat import CompatibilityReport, compare, signature_of, summary
from management_api.db import AlertRuleRow, ExportedApi, Model, ModelVersion, new_id, utcnow
from management_api.errors import Conflict, Forbidden, IncompatibleVersion, NotFound
from management_api.idempotency import HEADER as IDEMPOTENCY_HEADER
from management_api.idempotency import IdempotentExport
from management_api.performance import VersionInfo
from management_api.security import generate_api_key
from schemas import (
    ApiChanged,
    ApiChangeKind,
    ApiRecord,
    ApiStatus,
    FeatureSpec,
    ImageSpec,
    Task,
    TrafficMode,
    TrafficSplit,
)
from schemas.resources import (
    AlertThresholds,
    AlertThresholdsUpdate,
    ApiCreate,
    ApiCreated,
    ApiKeyRotated,
    ApiPublic,
    ApiUpdate,
    TrafficPublic,
    TrafficSet,
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
    joinedload(ExportedApi.traffic_version).load_only(ModelVersion.number),
    joinedload(ExportedApi.previous_version).load_only(ModelVersion.number),
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
        version_key=version.id,
        version_number=version.number,
        task=Task(api.model.task),
        features=[FeatureSpec.model_validate(f) for f in version.features],
        classes=version.classes,
        rate_limit_per_minute=api.rate_limit_per_minute,
        log_payloads=api.log_payloads,
        traffic=traffic_of(api),
        image=ImageSpec.model_validate(version.image) if version.image else None,
        updated_at=api.updated_at,
    )


def traffic_of(api: ExportedApi) -> TrafficSplit | None:
    """The API's canary or shadow version, as ingress reads it (None: all traffic served)."""
    second = api.traffic_version
    if second is None or api.traffic_mode is None or not api.traffic_weight:
        return None
    return TrafficSplit(
        version_key=second.id,
        version_number=second.number,
        mode=TrafficMode(api.traffic_mode),
        weight_percent=api.traffic_weight,
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
            version_number=api.version.number,
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
            traffic=self.traffic_public(api),
            previous_version_number=(
                api.previous_version.number if api.previous_version is not None else None
            ),
            health="error" if api.health == "error" else "ok",
        )

    @staticmethod
    def traffic_public(api: ExportedApi) -> TrafficPublic | None:
        split = traffic_of(api)
        if split is None:
            return None
        return TrafficPublic(
            version_number=split.version_number,
            model_version_id=split.version_key,
            mode=split.mode,
            weight_percent=split.weight_percent,
        )

    async def _announce(self, kind: ApiChangeKind, api_id: str, record: ApiRecord | None) -> None:
        await self._publish(ApiChanged(kind=kind, api_id=api_id, api=record))

    async def _owned(self, session: AsyncSession, principal: Principal, api_id: str) -> ExportedApi:
        api = await session.scalar(owned_apis(principal).where(ExportedApi.id == api_id))
        if api is None:
            raise NotFound("no such API", details={"api_id": api_id})
        return api

    async def create(self, principal: Principal, model_id: str, body: ApiCreate) -> ApiCreated:
        created, _ = await self.create_once(principal, model_id, body, None)
        return created

    async def create_once(
        self,
        principal: Principal,
        model_id: str,
        body: ApiCreate,
        idempotency_key: str | None,
    ) -> tuple[ApiCreated, bool]:
        """A new API and its key, and whether the answer is a replay: with an idempotency key
        (``management_api.idempotency``) the same request from the same user within 24 h gets the
        first answer again and creates nothing, even when both arrive at once."""
        once = (
            None
            if idempotency_key is None
            else IdempotentExport.of(principal.user_id, idempotency_key, model_id, body)
        )
        async with self._sessions() as session:
            if once is not None:
                replayed = await once.replay(session, self._rebuild)
                if replayed is not None:
                    return replayed, True
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
            await session.flush()
            session.add_all(default_rule_rows(api.id, self.thresholds_of(api)))
            api = await self._owned(session, principal, api.id)
            record, public = record_of(api), self.public(api)
            example = example_input(api.version, record.features)
            stored = {"api": public.model_dump(mode="json"), "example_request": example}
            created = self._rebuild({**stored, "api_url": public.endpoint_url}, key.key)
            if once is not None:
                session.add(once.row(created))
            try:
                await session.commit()
            except IntegrityError as exc:
                if once is None:
                    raise
                # The same key committed first (a concurrent double submit): its answer wins.
                await session.rollback()
                replayed = await once.replay(session, self._rebuild)
                if replayed is None:
                    message = f"{IDEMPOTENCY_HEADER} is in use by another request; retry"
                    raise Conflict(message) from exc
                await session.commit()
                return replayed, True
        await self._announce(ApiChangeKind.CREATED, api.id, record)
        return created, False

    def _rebuild(self, stored: dict[str, Any], api_key: str) -> ApiCreated:
        """The answer from its JSON without key (as stored for replays) and the API key."""
        url = str(stored["api_url"])
        example = dict(stored.get("example_request") or {})
        return ApiCreated.model_validate(
            {**stored, "api_key": api_key, "curl": curl_example(url, example, api_key)}
        )

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
            try:
                await session.refresh(api)
            except InvalidRequestError:  # deleted by another request since it was read again
                raise NotFound("no such API", details={"api_id": api_id}) from None
            record, public = record_of(api), self.public(api)
        await self._announce(kind, api_id, record)
        return public, result

    async def update(self, principal: Principal, api_id: str, body: ApiUpdate) -> ApiPublic:
        async def apply(session: AsyncSession, api: ExportedApi) -> None:
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
                # The thresholds are those of the API's rules of the same kinds (what the alert
                # engine evaluates): a threshold changed here changes them too.
                changed = body.alert_thresholds.model_dump(exclude_none=True)
                for kind, field, _window_s, _for_s in DEFAULT_RULES:
                    if field in changed:
                        await session.execute(
                            update(AlertRuleRow)
                            .where(AlertRuleRow.api_id == api.id, AlertRuleRow.kind == kind.value)
                            .values(threshold=float(changed[field]))
                        )

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

    async def deploy(
        self, principal: Principal, api_id: str, number: int, force: bool = False
    ) -> ApiPublic:
        """Serve version ``number``; refused (nothing changed) when it would break today's
        requests, unless the owner (or an admin) forces it."""

        async def apply(session: AsyncSession, api: ExportedApi) -> None:
            model = await session.get(Model, api.model_id)
            assert model is not None
            target = pick_version(model, number)
            report = compatibility_of(api, model, target)
            if not report.compatible:
                if not force:
                    raise IncompatibleVersion(
                        f"version {target.number} would break requests that version "
                        f"{api.version.number} accepts ({summary(report)}); "
                        "send force: true to deploy it anyway",
                        details=report.model_dump(mode="json"),
                    )
                if api.owner_id != principal.user_id and not principal.is_admin:
                    raise Forbidden("only the API's owner can force an incompatible version")
            if target.id != api.model_version_id:
                api.previous_version_id = api.model_version_id
            api.model_version_id = target.id
            second = api.traffic_version
            if second is not None and (
                second.id == target.id or not compatible_with(model.task, target, second)
            ):
                clear_traffic(api)  # a split must take the inputs of the version served

        public, _ = await self._change(principal, api_id, ApiChangeKind.DEPLOYED, apply)
        return public

    async def set_traffic(self, principal: Principal, api_id: str, body: TrafficSet) -> ApiPublic:
        """Route (canary) or mirror (shadow) ``weight_percent`` of the requests to another version
        of the model; it must take the inputs of the version served (ingress checks requests
        against those), else 409 ``INCOMPATIBLE_VERSION`` and nothing changes."""

        async def apply(session: AsyncSession, api: ExportedApi) -> None:
            model = await session.get(Model, api.model_id)
            assert model is not None
            target = pick_version(model, body.version)
            if target.id == api.model_version_id:
                raise Conflict(
                    f"version {target.number} already serves this API; pick another version",
                    details={"api_id": api.id, "version": target.number},
                )
            report = compatibility_of(api, model, target)
            if not report.compatible:
                raise IncompatibleVersion(
                    f"version {target.number} would refuse requests that version "
                    f"{api.version.number} accepts ({summary(report)})",
                    details=report.model_dump(mode="json"),
                )
            await switch(
                session,
                api,
                traffic_version_id=target.id,
                traffic_mode=body.mode.value,
                traffic_weight=float(body.weight_percent or 100.0),
            )

        public, _ = await self._change(principal, api_id, ApiChangeKind.UPDATED, apply)
        return public

    async def stop_traffic(self, principal: Principal, api_id: str) -> ApiPublic:
        """All traffic back to the version served (nothing to do without a split)."""

        async def apply(session: AsyncSession, api: ExportedApi) -> None:
            await switch(session, api, **NO_TRAFFIC)

        public, _ = await self._change(principal, api_id, ApiChangeKind.UPDATED, apply)
        return public

    async def promote(self, principal: Principal, api_id: str) -> ApiPublic:
        """The canary or shadow version serves every request; the one it replaces is kept as
        the previous version (rollback)."""

        async def apply(session: AsyncSession, api: ExportedApi) -> None:
            if api.traffic_version_id is None:
                raise Conflict(
                    "this API has no canary or shadow version to promote",
                    details={"api_id": api.id},
                )
            await switch(
                session,
                api,
                previous_version_id=api.model_version_id,
                model_version_id=api.traffic_version_id,
                **NO_TRAFFIC,
            )

        public, _ = await self._change(principal, api_id, ApiChangeKind.DEPLOYED, apply)
        return public

    async def rollback(self, principal: Principal, api_id: str) -> ApiPublic:
        """Undo the last traffic change: stop a running split, else serve the previous version
        again (once: the previous version is forgotten). 409 when there is nothing to undo."""

        async def apply(session: AsyncSession, api: ExportedApi) -> None:
            if api.traffic_version_id is not None:
                await switch(session, api, **NO_TRAFFIC)
            elif (
                api.previous_version_id is not None
                and api.previous_version_id != api.model_version_id
            ):
                await switch(
                    session,
                    api,
                    model_version_id=api.previous_version_id,
                    previous_version_id=None,
                )
            else:
                raise Conflict(
                    "nothing to roll back: no canary or shadow running and no previous version",
                    details={"api_id": api.id},
                )

        public, _ = await self._change(principal, api_id, ApiChangeKind.DEPLOYED, apply)
        return public

    async def version_numbers(self, principal: Principal, api_id: str) -> dict[str, int]:
        """The number of each version of the API's model, by model store key (monitoring)."""
        async with self._sessions() as session:
            api = await self._owned(session, principal, api_id)
            rows = await session.execute(
                select(ModelVersion.id, ModelVersion.number).where(
                    ModelVersion.model_id == api.model_id
                )
            )
            return {key: number for key, number in rows}

    async def version_infos(self, principal: Principal, api_id: str) -> dict[str, VersionInfo]:
        """Number, test metrics and classes of each version of the API's model, by store key
        (live performance beside the test metrics)."""
        async with self._sessions() as session:
            api = await self._owned(session, principal, api_id)
            rows = await session.execute(
                select(
                    ModelVersion.id, ModelVersion.number, ModelVersion.metrics, ModelVersion.classes
                ).where(ModelVersion.model_id == api.model_id)
            )
            return {
                key: VersionInfo(number, dict(metrics or {}), classes)
                for key, number, metrics, classes in rows
            }

    async def compatibility(
        self, principal: Principal, api_id: str, number: int | None
    ) -> CompatibilityReport:
        """What deploying version ``number`` (the latest if None) would change for callers."""
        async with self._sessions() as session:
            api = await self._owned(session, principal, api_id)
            model = await session.get(Model, api.model_id)
            assert model is not None
            return compatibility_of(api, model, pick_version(model, number))

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


def compatibility_of(api: ExportedApi, model: Model, target: ModelVersion) -> CompatibilityReport:
    served = api.version
    diff = compare(
        signature_of(model.task, served.features, served.classes, served.image),
        signature_of(model.task, target.features, target.classes, target.image),
    )
    return CompatibilityReport(
        api_id=api.id,
        served_version=served.number,
        target_version=target.number,
        **diff.model_dump(),
    )


NO_TRAFFIC: dict[str, Any] = {
    "traffic_version_id": None,
    "traffic_mode": None,
    "traffic_weight": None,
}


async def switch(session: AsyncSession, api: ExportedApi, **values: Any) -> None:
    """Write the API's versions and split only if they are still what this request read: of two
    promotes or rollbacks at once, one applies and the other is 409 (not both, on stale state).
    The row is re-read after the commit (``Exports._change``)."""
    current = (
        ExportedApi.model_version_id == api.model_version_id,
        ExportedApi.traffic_version_id.is_(None)
        if api.traffic_version_id is None
        else ExportedApi.traffic_version_id == api.traffic_version_id,
        ExportedApi.previous_version_id.is_(None)
        if api.previous_version_id is None
        else ExportedApi.previous_version_id == api.previous_version_id,
    )
    result = await session.execute(
        update(ExportedApi)
        .where(ExportedApi.id == api.id, *current)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise Conflict(
            "the API's versions changed meanwhile (another promote, rollback or deploy); "
            "reload it and retry",
            details={"api_id": api.id},
        )


def clear_traffic(api: ExportedApi) -> None:
    api.traffic_version_id = None
    api.traffic_mode = None
    api.traffic_weight = None


def compatible_with(task: str, served: ModelVersion, second: ModelVersion) -> bool:
    """Whether ``second`` takes every request ``served`` takes (a split's condition)."""
    return compare(
        # Ingress turns an image into the serving version's features for both versions.
        signature_of(task, served.features, served.classes),
        signature_of(task, second.features, second.classes),
    ).compatible


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
