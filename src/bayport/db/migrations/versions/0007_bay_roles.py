"""A bay's cluster credentials per role: bay_credentials.reader_token and network_token.

Embedded bays accept a read-only token (what project readers' kubeconfigs carry) and a token of
the pod-network controller's own (the one that may set kuryr.org annotations); bays of other
drivers leave both NULL.

Revision ID: 0007_bay_roles
Revises: 0006_pod_pool
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_bay_roles"
down_revision = "0006_pod_pool"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bay_credentials") as batch:
        batch.add_column(sa.Column("reader_token", sa.Text(), nullable=True))
        batch.add_column(sa.Column("network_token", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bay_credentials") as batch:
        batch.drop_column("network_token")
        batch.drop_column("reader_token")
