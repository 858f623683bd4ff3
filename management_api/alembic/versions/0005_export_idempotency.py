"""Idempotency keys of ``POST /api/export/{model_id}``: one row per (user, key digest) for 24 h;
the primary key makes two concurrent requests with one key create one API.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_idempotency",
        sa.Column(
            "user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key_digest", sa.String(64), primary_key=True),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("api_id", sa.String(32), nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("sealed_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_export_idempotency_created_at", "export_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_export_idempotency_created_at", table_name="export_idempotency")
    op.drop_table("export_idempotency")
