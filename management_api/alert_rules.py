"""Alert rules, active alerts, acknowledgements, silences and the alert history for the routes
(issue 12); the engine (``management_api.alert_engine``) evaluates what is stored here.

Owners see their APIs' rules and alerts, admins everyone's; anything else is 404.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from management_api.accounts import Principal
from management_api.alert_engine import rule_of, transition_of
from management_api.db import AlertRuleRow, AlertTransitionRow, ExportedApi, new_id
from management_api.errors import InvalidInput, NotFound
from management_api.exports import owned_apis
from schemas.alerts import (
    ActiveAlertList,
    AlertHistory,
    AlertHistoryQuery,
    AlertRuleKind,
    AlertRuleList,
    AlertRuleStatus,
    AlertRulesUpdate,
    AlertState,
)


def status_of(row: AlertRuleRow, api_name: str) -> AlertRuleStatus:
    return AlertRuleStatus(
        rule=rule_of(row),
        api_name=api_name,
        state=AlertState(row.state),
        value=row.value,
        since=row.state_since,
        acked_by=row.acked_by,
        acked_at=row.acked_at,
        silenced_until=row.silenced_until,
    )


class AlertRules:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _api(self, session: AsyncSession, principal: Principal, api_id: str) -> ExportedApi:
        api = await session.scalar(owned_apis(principal).where(ExportedApi.id == api_id))
        if api is None:
            raise NotFound("no such API", details={"api_id": api_id})
        return api

    async def _rows(self, session: AsyncSession, api_id: str) -> list[AlertRuleRow]:
        return list(
            (
                await session.scalars(
                    select(AlertRuleRow)
                    .where(AlertRuleRow.api_id == api_id)
                    .order_by(AlertRuleRow.position, AlertRuleRow.created_at)
                )
            ).all()
        )

    async def rules(self, principal: Principal, api_id: str) -> AlertRuleList:
        async with self._sessions() as session:
            await self._api(session, principal, api_id)
            return AlertRuleList(items=[rule_of(r) for r in await self._rows(session, api_id)])

    async def replace(
        self, principal: Principal, api_id: str, body: AlertRulesUpdate
    ) -> AlertRuleList:
        """The API's rules become ``body.rules``: a rule named by ``id`` keeps its state (reset
        to ok if its kind, threshold or window changed), rules left out are deleted; a firing rule
        reset, disabled or deleted resolves (a stored firing -> resolved transition)."""
        async with self._sessions() as session:
            api = await self._api(session, principal, api_id)
            now = datetime.now(UTC)
            existing = {r.id: r for r in await self._rows(session, api_id)}
            seen: set[str] = set()
            for spec in body.rules:
                if spec.id is None:
                    continue
                if spec.id not in existing:
                    raise InvalidInput("no such rule of this API", details={"rule_id": spec.id})
                if spec.id in seen:
                    raise InvalidInput("a rule appears twice", details={"rule_id": spec.id})
                seen.add(spec.id)
            for rule_id, row in existing.items():
                if rule_id not in seen:
                    _resolve(session, row, api, now)
                    await session.delete(row)
            for position, spec in enumerate(body.rules):
                found = existing.get(spec.id) if spec.id is not None else None
                if found is None:
                    row = AlertRuleRow(id=new_id(), api_id=api_id, state=AlertState.OK.value)
                    session.add(row)
                else:
                    row = found
                if found is not None and (
                    row.kind != spec.kind.value
                    or row.threshold != spec.threshold
                    or row.window_s != spec.window_s
                    or not spec.enabled
                ):
                    _resolve(session, row, api, now)
                    row.state, row.state_since, row.value = AlertState.OK.value, None, None
                    row.acked_by = row.acked_at = None
                row.kind = spec.kind.value
                row.threshold = spec.threshold
                row.window_s = spec.window_s
                row.for_s = spec.for_s
                row.min_requests = spec.min_requests
                row.enabled = spec.enabled
                row.position = position
            await session.flush()
            firing_5xx = any(
                spec.kind is AlertRuleKind.ERROR_RATE_5XX
                and spec.id is not None
                and existing[spec.id].state == AlertState.FIRING.value
                for spec in body.rules
            )
            await session.execute(
                update(ExportedApi)
                .where(ExportedApi.id == api_id)
                .values(health="error" if firing_5xx else "ok")
            )
            await session.commit()
            return AlertRuleList(items=[rule_of(r) for r in await self._rows(session, api_id)])

    async def active(self, principal: Principal) -> ActiveAlertList:
        apis = owned_apis(principal).with_only_columns(ExportedApi.id, ExportedApi.name)
        visible = apis.subquery()
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(AlertRuleRow, visible.c.name)
                    .join(visible, visible.c.id == AlertRuleRow.api_id)
                    .where(
                        AlertRuleRow.state.in_([AlertState.PENDING.value, AlertState.FIRING.value])
                    )
                    .order_by(AlertRuleRow.state_since.desc())
                )
            ).all()
            return ActiveAlertList(items=[status_of(row, name) for row, name in rows])

    async def _rule(
        self, session: AsyncSession, principal: Principal, rule_id: str
    ) -> tuple[AlertRuleRow, str]:
        visible = owned_apis(principal).with_only_columns(ExportedApi.id, ExportedApi.name)
        sub = visible.subquery()
        found = (
            await session.execute(
                select(AlertRuleRow, sub.c.name)
                .join(sub, sub.c.id == AlertRuleRow.api_id)
                .where(AlertRuleRow.id == rule_id)
            )
        ).first()
        if found is None:
            raise NotFound("no such alert rule", details={"rule_id": rule_id})
        return found[0], found[1]

    async def ack(self, principal: Principal, rule_id: str) -> AlertRuleStatus:
        async with self._sessions() as session:
            row, name = await self._rule(session, principal, rule_id)
            if row.state not in (AlertState.PENDING.value, AlertState.FIRING.value):
                raise InvalidInput(
                    "only a pending or firing alert can be acknowledged",
                    details={"rule_id": rule_id, "state": row.state},
                )
            row.acked_by, row.acked_at = principal.username, datetime.now(UTC)
            await session.commit()
            return status_of(row, name)

    async def silence(
        self, principal: Principal, rule_id: str, duration_s: int | None
    ) -> AlertRuleStatus:
        async with self._sessions() as session:
            row, name = await self._rule(session, principal, rule_id)
            row.silenced_until = (
                None if duration_s is None else datetime.now(UTC) + timedelta(seconds=duration_s)
            )
            await session.commit()
            return status_of(row, name)

    async def history(self, principal: Principal, query: AlertHistoryQuery) -> AlertHistory:
        statement = select(AlertTransitionRow)
        if not principal.is_admin:
            statement = statement.where(AlertTransitionRow.owner_id == principal.user_id)
        if query.api_id is not None:
            statement = statement.where(AlertTransitionRow.api_id == query.api_id)
        if query.state is not None:
            statement = statement.where(AlertTransitionRow.to_state == query.state.value)
        if query.since is not None:
            statement = statement.where(AlertTransitionRow.at >= _utc(query.since))
        if query.until is not None:
            statement = statement.where(AlertTransitionRow.at < _utc(query.until))
        statement = statement.order_by(AlertTransitionRow.seq.desc()).limit(query.limit)
        async with self._sessions() as session:
            rows = (await session.scalars(statement)).all()
            return AlertHistory(items=[transition_of(r) for r in rows])


def _resolve(session: AsyncSession, row: AlertRuleRow, api: ExportedApi, now: datetime) -> None:
    """A firing rule that is changed, disabled or deleted resolves (stored, so published and
    notified like the engine's transitions): its receivers got ``firing`` and must not be left
    with an alert open for ever."""
    if row.state != AlertState.FIRING.value:
        return
    silenced = row.silenced_until is not None and _utc(row.silenced_until) > now
    session.add(
        AlertTransitionRow(
            transition_id=new_id(),
            rule_id=row.id,
            api_id=api.id,
            owner_id=api.owner_id,
            api_name=api.name,
            kind=row.kind,
            from_state=AlertState.FIRING.value,
            to_state=AlertState.RESOLVED.value,
            value=None,
            threshold=row.threshold,
            window_s=row.window_s,
            for_s=row.for_s,
            at=now,
            silenced=silenced,
            published=silenced,  # as the engine's: a silenced transition is not notified
        )
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
