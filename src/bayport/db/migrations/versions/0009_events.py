"""The event log (db.events): events, event_horizon, and the triggers that fill events from
baymodels, bays, workloads, tenants, jobs and ports.

The sources are frozen here: a later change of what a table contributes is a new revision
that drops and recreates that table's triggers.

Revision ID: 0009_events
Revises: 0008_quotas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bayport.db.base
from bayport.db.events import (
    PG_DROP_FUNCTIONS,
    PG_FUNCTIONS,
    EventSource,
    drop_trigger_ddl,
    pg_trigger_ddl,
    sqlite_trigger_ddl,
)

revision = "0009_events"
down_revision = "0008_quotas"
branch_labels = None
depends_on = None

SOURCES = (
    EventSource("baymodels", "baymodel", "uuid", "project_id", None, "name", None, None,
                ("name", "public", "hidden")),
    EventSource("bays", "bay", "uuid", "project_id", "uuid", "name", "status", "status_reason",
                ("name", "status", "status_reason", "node_count", "master_count", "api_address",
                 "health_status", "coe_version")),
    EventSource("workloads", "=kind", "uuid", "project_id", "bay_uuid", "name", "status",
                "status_reason", ("status", "status_reason", "host", "pod_ip", "ip", "replicas",
                                  "ready_replicas", "deleted_at"), gone="deleted_at",
                kind_names=(("Pod", "pod"), ("Service", "service"),
                            ("ReplicationController", "rc"))),
    EventSource("tenants", "tenant", "id", "project_id", "bay_uuid", "name", None, None, ("name",)),
    EventSource("jobs", "job", "uuid", "project_id", "bay_uuid", "name", "status", "message",
                ("status", "message", "exit_code", "deleted_in_cluster")),
    EventSource("ports", "port", "id", "project_id", "bay_uuid", "name", "status", None,
                ("status", "device_id", "host_id")),
)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("uuid", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("bay_uuid", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "event_horizon",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO event_horizon (id, pruned_through) VALUES (1, 0)")
    dialect = op.get_bind().dialect.name
    statements = list(PG_FUNCTIONS) if dialect == "postgresql" else []
    for src in SOURCES:
        statements += pg_trigger_ddl(src) if dialect == "postgresql" else sqlite_trigger_ddl(src)
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for src in SOURCES:
        for statement in drop_trigger_ddl(src, dialect):
            op.execute(statement)
    op.drop_table("event_horizon")
    if dialect == "postgresql":
        for statement in PG_DROP_FUNCTIONS:
            op.execute(statement)
    op.drop_table("events")
