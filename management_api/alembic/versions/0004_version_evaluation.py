"""A model version keeps its held-out evaluation.

``model_versions.evaluation`` (JSON, nullable): the confusion matrix and per-class scores of a
classifier or the residuals of a regressor, and permutation importance per input feature, as the
training process computed them. Versions trained before this revision and uploaded versions have
none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_versions", sa.Column("evaluation", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "evaluation")  # SQLite 3.35+ drops a column in place
