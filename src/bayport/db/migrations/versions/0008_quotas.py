"""Per-project quotas (Magnum's /v1/quotas): quotas(project_id, resource, hard_limit).

Revision ID: 0008_quotas
Revises: 0007_bay_roles
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bayport.db.base

revision = "0008_quotas"
down_revision = "0007_bay_roles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quotas",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=32), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("project_id", "resource", name="uq_quotas_project_resource"),
    )


def downgrade() -> None:
    op.drop_table("quotas")
