"""A pod row shows its port: workloads.port_id (from the pod's bayport.io/port-id annotation).

Revision ID: 0005_pod_ports
Revises: 0004_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_pod_ports"
down_revision = "0004_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workloads") as batch:
        batch.add_column(sa.Column("port_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workloads") as batch:
        batch.drop_column("port_id")
