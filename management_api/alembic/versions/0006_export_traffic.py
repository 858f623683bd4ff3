"""Canary and shadow traffic of an exported API: a second version of its model with the mode and
share of requests it gets, and the version served before the last promote or deploy (rollback).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a foreign key to an existing table (the table is copied).
    with op.batch_alter_table("exported_apis") as batch:
        batch.add_column(sa.Column("traffic_version_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("traffic_mode", sa.String(16), nullable=True))
        batch.add_column(sa.Column("traffic_weight", sa.Float, nullable=True))
        batch.add_column(sa.Column("previous_version_id", sa.String(64), nullable=True))
        batch.create_foreign_key(
            "fk_exported_apis_traffic_version_id",
            "model_versions",
            ["traffic_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_foreign_key(
            "fk_exported_apis_previous_version_id",
            "model_versions",
            ["previous_version_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("exported_apis") as batch:
        batch.drop_constraint("fk_exported_apis_previous_version_id", type_="foreignkey")
        batch.drop_constraint("fk_exported_apis_traffic_version_id", type_="foreignkey")
        batch.drop_column("previous_version_id")
        batch.drop_column("traffic_weight")
        batch.drop_column("traffic_mode")
        batch.drop_column("traffic_version_id")
