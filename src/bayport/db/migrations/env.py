"""Alembic environment: runs revisions on the async engine handed over by bayport.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

import bayport.db.all_models  # noqa: F401  (registers every table on Base.metadata)
from bayport.db.base import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `bayport db upgrade` (bayport.db.migrate)")
_run(connection)
