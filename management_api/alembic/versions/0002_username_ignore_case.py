"""Usernames unique ignoring case: a unique index on ``lower(username)``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT lower(username) AS name, count(*) AS n FROM users "
                "GROUP BY lower(username) HAVING count(*) > 1 ORDER BY 1"
            )
        )
        .all()
    )
    if clashes:
        names = ", ".join(f"{row.name!r} ({row.n} accounts)" for row in clashes)
        raise RuntimeError(
            "usernames must now be unique ignoring case, and these differ only by case: "
            f"{names}. Rename or delete all but one of each (UPDATE users SET username = ... "
            "in the metadata DB), then start again."
        )
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_username_lower", table_name="users")
