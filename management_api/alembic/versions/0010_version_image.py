"""A model version may take images (issue 14).

``model_versions.image`` (JSON, nullable): the ``ImageSpec`` of a version whose features are the
pixels of W x H grayscale images (width, height, value range, ink high or low, margin, whole
numbers), filled for the built-in digits and declared by a CSV training or an upload. Older
versions have none: they take features only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("image", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "image")
