"""Deactivating an account ends its sessions for good: ``users.tokens_after``.

A deactivated account's tokens were refused only while it stayed deactivated; reactivating it
made every token issued before (a leaked one included) work again. Tokens issued before
``tokens_after`` (set at each deactivation) are refused; NULL for every existing account.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("tokens_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "tokens_after")  # SQLite 3.35+ drops a column in place
