"""Accounts can be deactivated: ``users.active`` (every existing account stays active).

A deactivated account cannot log in and its tokens stop working; an admin reactivates it. Kept
beside deletion because a user who owns models cannot be deleted, and deactivating keeps the
history (who owned what) while locking the door.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends (SQLite allows NOT NULL with a default), so the
    # table is not rebuilt and its ``lower(username)`` index stays as it is.
    op.add_column(
        "users", sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    op.drop_column("users", "active")  # SQLite 3.35+ drops a column in place
