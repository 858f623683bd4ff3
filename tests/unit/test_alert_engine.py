"""The alert state machine, the rule conditions, the migration's backfill and the outbox of
unpublished transitions (no broker, no ClickHouse)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from management_api.alert_engine import (
    AlertEngine,
    Figures,
    measure,
    step,
    window_figures_sql,
)
from management_api.db import (
    AlertTransitionRow,
    alembic_config,
    create_engine,
    migrate,
    session_factory,
)
from schemas.alerts import AlertRule, AlertRuleKind, AlertState, AlertTransition

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def rule(kind: AlertRuleKind, threshold: float, **kw: int) -> AlertRule:
    return AlertRule(id="r", api_id="a", kind=kind, threshold=threshold, **kw)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_pending_fires_only_after_for_s_then_resolves_then_ok_silently() -> None:
    s = step(AlertState.OK, None, True, 60, at(0))
    assert (s.state, s.changed) == (AlertState.PENDING, (AlertState.OK, AlertState.PENDING))
    s = step(s.state, s.since, True, 60, at(59))
    assert (s.state, s.changed, s.since) == (AlertState.PENDING, None, at(0))
    s = step(s.state, s.since, True, 60, at(60))
    assert (s.state, s.changed) == (AlertState.FIRING, (AlertState.PENDING, AlertState.FIRING))
    s = step(s.state, s.since, True, 60, at(600))
    assert (s.state, s.changed) == (AlertState.FIRING, None)
    s = step(s.state, s.since, False, 60, at(615))
    assert (s.state, s.changed) == (AlertState.RESOLVED, (AlertState.FIRING, AlertState.RESOLVED))
    s = step(s.state, s.since, False, 60, at(630))
    assert (s.state, s.changed) == (AlertState.OK, None)


def test_pending_whose_condition_ends_goes_back_to_ok_without_a_transition() -> None:
    s = step(AlertState.OK, None, True, 300, at(0))
    s = step(s.state, s.since, False, 300, at(15))
    assert (s.state, s.changed) == (AlertState.OK, None)


def test_zero_for_fires_at_once_and_resolved_refires() -> None:
    s = step(AlertState.OK, None, True, 0, at(0))
    assert (s.state, s.changed) == (AlertState.FIRING, (AlertState.OK, AlertState.FIRING))
    s = step(AlertState.RESOLVED, at(0), True, 0, at(15))
    assert s.changed == (AlertState.RESOLVED, AlertState.FIRING)


def test_rates_need_min_requests_no_data_never_holds() -> None:
    r5 = rule(AlertRuleKind.ERROR_RATE_5XX, 0.1, min_requests=20)
    assert measure(r5, Figures(requests=10, errors_5xx=10)) == (None, False)
    assert measure(r5, Figures()) == (None, False)
    assert measure(r5, Figures(requests=100, errors_5xx=20)) == (0.2, True)
    assert measure(r5, Figures(requests=100, errors_5xx=10, errors_4xx=50)) == (0.1, False)
    r4 = rule(AlertRuleKind.ERROR_RATE_4XX, 0.3, min_requests=1)
    assert measure(r4, Figures(requests=100, errors_5xx=90, errors_4xx=40)) == (0.4, True)
    p95 = rule(AlertRuleKind.P95_MS, 500, min_requests=1)
    assert measure(p95, Figures(requests=5, p95_ms=800.0)) == (800.0, True)
    limited = rule(AlertRuleKind.RATE_LIMIT_SATURATION, 0.5, min_requests=1)
    assert measure(limited, Figures(requests=4, rate_limited=3)) == (0.75, True)


def test_no_traffic_holds_for_an_idle_api_and_not_with_one_request() -> None:
    idle = rule(AlertRuleKind.NO_TRAFFIC, 0)
    assert measure(idle, Figures()) == (0.0, True)
    assert measure(idle, Figures(requests=1)) == (1.0, False)


def test_traffic_drop_compares_with_the_previous_window() -> None:
    drop = rule(AlertRuleKind.TRAFFIC_DROP, 0.5, min_requests=10)
    assert measure(drop, Figures(requests=0, previous_requests=100)) == (0.0, True)
    assert measure(drop, Figures(requests=60, previous_requests=100)) == (0.6, False)
    assert measure(drop, Figures(requests=0, previous_requests=5)) == (None, False)  # no data


def test_cpu_and_memory_hold_without_traffic_minimum() -> None:
    assert measure(rule(AlertRuleKind.CPU_PERCENT, 80), Figures(cpu_percent=90.0))[1]
    assert not measure(rule(AlertRuleKind.MEMORY_MB, 1024), Figures(memory_mb=1000.0))[1]


def test_one_query_for_every_api_and_window() -> None:
    sql = window_figures_sql("db")
    assert "ARRAY JOIN {windows:Array(UInt32)}" in sql
    assert "api_id IN {api_ids:Array(String)}" in sql
    assert "GROUP BY api_id, w" in sql


# --- storage: the migration's backfill and the outbox (SQLite, no broker) -----------------------


async def _upgrade(engine: AsyncEngine, revision: str) -> None:
    url = engine.url.render_as_string(hide_password=False)

    def run(connection: Any) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def _seed_api(engine: AsyncEngine, thresholds: str) -> None:
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO users (id, username, password_hash, role, created_at, active) "
                "VALUES ('u1', 'owner', 'x', 'user', '2026-12-01 00:00:00', 1)"
            )
        )
        await db.execute(
            text(
                "INSERT INTO models (id, owner_id, name, task, created_at) "
                "VALUES ('m1', 'u1', 'iris', 'classification', '2026-12-01 00:00:00')"
            )
        )
        await db.execute(
            text(
                "INSERT INTO model_versions (id, model_id, number, algorithm, params, metrics, "
                "features, target, n_train, n_test, source, created_at) VALUES ('v1', 'm1', 1, "
                "'lr', '{}', '{}', '[]', 'y', 1, 1, 'builtin', '2026-12-01 00:00:00')"
            )
        )
        await db.execute(
            text(
                "INSERT INTO exported_apis (id, owner_id, model_id, model_version_id, name, "
                "status, key_hash, key_prefix, rate_limit_per_minute, log_payloads, "
                "alert_thresholds, created_at, updated_at) VALUES ('a1', 'u1', 'm1', 'v1', "
                "'iris', 'active', 'h', 'mg_x', 100, 1, :thresholds, '2026-12-01 00:00:00', "
                "'2026-12-01 00:00:00')"
            ),
            {"thresholds": thresholds},
        )


async def test_migration_0008_turns_each_apis_thresholds_into_rules(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
    try:
        await _upgrade(engine, "0007")
        await _seed_api(engine, '{"error_rate": 0.2, "p95_ms": 900}')
        await migrate(engine)
        async with engine.connect() as db:
            rules = (
                await db.execute(
                    text("SELECT kind, threshold, state FROM alert_rules WHERE api_id = 'a1'")
                )
            ).all()
            health = await db.scalar(text("SELECT health FROM exported_apis"))
        assert sorted(rules) == [
            ("cpu_percent", 80.0, "ok"),
            ("error_rate_5xx", 0.2, "ok"),
            ("memory_mb", 1024.0, "ok"),
            ("p95_ms", 900.0, "ok"),
        ]
        assert health == "ok"
    finally:
        await engine.dispose()


async def test_unpublished_transitions_wait_and_go_out_in_order_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'meta.db'}")
    try:
        await _upgrade(engine, "0007")
        await _seed_api(engine, "{}")
        await migrate(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            for i, (a, b) in enumerate([("ok", "pending"), ("pending", "firing")]):
                session.add(
                    AlertTransitionRow(
                        transition_id=f"t{i}",
                        rule_id="r1",
                        api_id="a1",
                        owner_id="u1",
                        api_name="iris",
                        kind="p95_ms",
                        from_state=a,
                        to_state=b,
                        value=900.0,
                        threshold=500.0,
                        window_s=300,
                        for_s=60,
                        at=at(i),
                        silenced=False,
                        published=False,
                    )
                )
            await session.commit()
        sent: list[str] = []
        broker_up = False

        async def publish(transition: AlertTransition) -> None:
            if not broker_up:
                raise ConnectionError("broker away")
            sent.append(transition.transition_id)

        async def no_clickhouse() -> Any:
            raise AssertionError("not asked")

        alerts = AlertEngine(sessions, no_clickhouse, publish, 15.0)
        assert await alerts.publish_pending() == 0
        broker_up = True
        assert await alerts.publish_pending() == 2
        assert await alerts.publish_pending() == 0
        assert sent == ["t0", "t1"]
    finally:
        await engine.dispose()
