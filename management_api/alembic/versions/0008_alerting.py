"""alert rules, their current state, silences and the transition history (issue 12, engine).

Every existing API gets the rules its ``alert_thresholds`` stood for (5xx error rate, p95, CPU,
memory; the service defaults where it set none): the engine evaluates rules, not thresholds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DEFAULTS: dict[str, float] = {
    "error_rate": 0.05,
    "p95_ms": 500.0,
    "cpu_percent": 80.0,
    "memory_mb": 1024.0,
}
"""The thresholds ``schemas.resources.AlertThresholds`` defaults to (frozen here)."""
BACKFILL: list[tuple[str, str, int, int]] = [
    ("error_rate", "error_rate_5xx", 300, 60),
    ("p95_ms", "p95_ms", 300, 60),
    ("cpu_percent", "cpu_percent", 300, 120),
    ("memory_mb", "memory_mb", 300, 120),
]
"""(threshold key, rule kind, window_s, for_s) of the rules made from an API's thresholds; the
same as ``management_api.alert_rules.default_rules``."""


def upgrade() -> None:
    with op.batch_alter_table("exported_apis") as batch:
        batch.add_column(sa.Column("health", sa.String(8), nullable=False, server_default="ok"))
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "api_id",
            sa.String(32),
            sa.ForeignKey("exported_apis.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("window_s", sa.Integer, nullable=False),
        sa.Column("for_s", sa.Integer, nullable=False),
        sa.Column("min_requests", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.String(64), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("silenced_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alert_rules_api_id", "alert_rules", ["api_id"])
    op.create_table(
        "alert_transitions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transition_id", sa.String(32), nullable=False, unique=True),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column(
            "api_id",
            sa.String(32),
            sa.ForeignKey("exported_apis.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("owner_id", sa.String(32), nullable=False),
        sa.Column("api_name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("window_s", sa.Integer, nullable=False),
        sa.Column("for_s", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("silenced", sa.Boolean, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
    )
    for column in ("rule_id", "api_id", "owner_id", "at", "published"):
        op.create_index(f"ix_alert_transitions_{column}", "alert_transitions", [column])
    _backfill()


def _thresholds(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    return raw if isinstance(raw, dict) else {}


def _backfill() -> None:
    connection = op.get_bind()
    apis = connection.execute(sa.text("SELECT id, alert_thresholds FROM exported_apis")).all()
    rules = sa.table(
        "alert_rules",
        *(
            sa.column(name)
            for name in (
                "id",
                "api_id",
                "kind",
                "threshold",
                "window_s",
                "for_s",
                "min_requests",
                "enabled",
                "position",
                "state",
                "created_at",
            )
        ),
    )
    now = datetime.now(UTC)
    rows = []
    for api_id, raw in apis:
        thresholds = {**DEFAULTS, **_thresholds(raw)}
        for position, (key, kind, window_s, for_s) in enumerate(BACKFILL):
            rows.append(
                {
                    "id": uuid.uuid4().hex,
                    "api_id": api_id,
                    "kind": kind,
                    "threshold": float(thresholds[key]),
                    "window_s": window_s,
                    "for_s": for_s,
                    "min_requests": 20,
                    "enabled": True,
                    "position": position,
                    "state": "ok",
                    "created_at": now,
                }
            )
    if rows:
        op.bulk_insert(rules, rows)


def downgrade() -> None:
    for column in ("rule_id", "api_id", "owner_id", "at", "published"):
        op.drop_index(f"ix_alert_transitions_{column}", table_name="alert_transitions")
    op.drop_table("alert_transitions")
    op.drop_index("ix_alert_rules_api_id", table_name="alert_rules")
    op.drop_table("alert_rules")
    with op.batch_alter_table("exported_apis") as batch:
        batch.drop_column("health")
