"""Initial metadata schema: users, models, model versions, exported APIs, training jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_login_at", TS, nullable=True),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("owner_id", "name", name="uq_models_owner_name"),
    )
    op.create_index("ix_models_owner_id", "models", ["owner_id"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "model_id",
            sa.String(32),
            sa.ForeignKey("models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("algorithm", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("classes", sa.JSON, nullable=True),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("n_train", sa.Integer, nullable=False),
        sa.Column("n_test", sa.Integer, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("example", sa.JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("model_id", "number", name="uq_model_versions_number"),
    )
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])
    op.create_table(
        "exported_apis",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id"), nullable=False),
        sa.Column(
            "model_version_id", sa.String(64), sa.ForeignKey("model_versions.id"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer, nullable=False),
        sa.Column("log_payloads", sa.Boolean, nullable=False),
        sa.Column("alert_thresholds", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_exported_apis_owner_id", "exported_apis", ["owner_id"])
    op.create_index("ix_exported_apis_model_id", "exported_apis", ["model_id"])
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("model_name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("model_id", sa.String(32), nullable=True),
        sa.Column("version_number", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("log", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_training_jobs_owner_id", "training_jobs", ["owner_id"])


def downgrade() -> None:
    op.drop_table("training_jobs")
    op.drop_table("exported_apis")
    op.drop_table("model_versions")
    op.drop_table("models")
    op.drop_table("users")
