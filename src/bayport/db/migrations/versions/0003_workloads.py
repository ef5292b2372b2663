"""workloads table: pods, services and replication controllers Bayport created in its bays

Revision ID: 0003_workloads
Revises: 0002_network
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bayport.db.base

revision = "0003_workloads"
down_revision = "0002_network"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "workloads",
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("bay_uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=True),
        sa.Column("manifest_url", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("images", sa.JSON(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pod_ip", sa.String(length=64), nullable=True),
        sa.Column("selector", sa.JSON(), nullable=True),
        sa.Column("ports", sa.JSON(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("replicas", sa.Integer(), nullable=True),
        sa.Column("ready_replicas", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("k8s_uid", sa.String(length=64), nullable=True),
        sa.Column("deleted_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["bay_uuid"], ["bays.uuid"], name=op.f("fk_workloads_bay_uuid_bays"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_workloads")),
    )
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.create_index("ix_workloads_bay_kind", ["bay_uuid", "kind"], unique=False)
        batch_op.create_index("ix_workloads_project_kind", ["project_id", "kind"], unique=False)
        batch_op.create_index("uq_workloads_live_name", ["bay_uuid", "kind", "namespace", "name"],
                              unique=True, sqlite_where=LIVE, postgresql_where=LIVE)


def downgrade() -> None:
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_index("uq_workloads_live_name", sqlite_where=LIVE, postgresql_where=LIVE)
        batch_op.drop_index("ix_workloads_project_kind")
        batch_op.drop_index("ix_workloads_bay_kind")
    op.drop_table("workloads")
