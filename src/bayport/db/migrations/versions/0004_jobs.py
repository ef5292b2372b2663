"""jobs tables: tenants of the job service, their volumes and their jobs

Revision ID: 0004_jobs
Revises: 0003_workloads
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bayport.db.base

revision = "0004_jobs"
down_revision = "0003_workloads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("bay_uuid", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["bay_uuid"], ["bays.uuid"], name=op.f("fk_tenants_bay_uuid_bays"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenants_bay_uuid"), ["bay_uuid"], unique=False)
        batch_op.create_index("ix_tenants_project_created", ["project_id", "created_at"], unique=False)

    op.create_table(
        "tenant_volumes",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("size", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("volume_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_tenant_volumes_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_tenant_volumes")),
    )

    op.create_table(
        "jobs",
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("bay_uuid", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("cmd", sa.Text(), nullable=False),
        sa.Column("vols", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("started_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("k8s_uid", sa.String(length=64), nullable=True),
        sa.Column("deleted_in_cluster", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bayport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_jobs_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_bay_status", ["bay_uuid", "status"], unique=False)
        batch_op.create_index("ix_jobs_project_created", ["project_id", "created_at"], unique=False)
        batch_op.create_index("ix_jobs_tenant_status", ["tenant_id", "status"], unique=False)
        batch_op.create_index("uq_jobs_project_idempotency_key", ["project_id", "idempotency_key"],
                              unique=True)
        batch_op.create_index("uq_jobs_tenant_name", ["tenant_id", "name"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("uq_jobs_tenant_name")
        batch_op.drop_index("uq_jobs_project_idempotency_key")
        batch_op.drop_index("ix_jobs_tenant_status")
        batch_op.drop_index("ix_jobs_project_created")
        batch_op.drop_index("ix_jobs_bay_status")
    op.drop_table("jobs")
    op.drop_table("tenant_volumes")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_index("ix_tenants_project_created")
        batch_op.drop_index(batch_op.f("ix_tenants_bay_uuid"))
    op.drop_table("tenants")
