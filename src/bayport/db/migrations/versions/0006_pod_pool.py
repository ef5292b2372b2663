"""Every local bay gets a pod pool of its own: bays.pod_pool (a /16 no other bay or host route has).

Revision ID: 0006_pod_pool
Revises: 0005_pod_ports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_pod_pool"
down_revision = "0005_pod_ports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bays") as batch:
        batch.add_column(sa.Column("pod_pool", sa.String(length=43), nullable=True))
        batch.create_index("ux_bays_pod_pool", ["pod_pool"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("bays") as batch:
        batch.drop_index("ux_bays_pod_pool")
        batch.drop_column("pod_pool")
