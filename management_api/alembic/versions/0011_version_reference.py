"""A model version keeps a reference profile of its training data (issue 15, drift).

``model_versions.reference`` (JSON, nullable): per feature, quantile bins (numbers) or category
shares of the training inputs, and the shares of the test split's predictions (classes, or value
bins), as ``management_api.reference.build_profile`` makes it: bounded (10 bins, 31 categories
per feature). Versions trained before, and uploaded versions, have none: their APIs' drift
answers 409 NO_REFERENCE.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("reference", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "reference")
