"""The Alembic history upgrades an empty database to head on SQLite and on PostgreSQL,
and the result matches the models (no drift between migrations and code)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import bayport.db.all_models  # noqa: F401
from bayport.db.base import Base, make_engine
from bayport.db.migrate import current_revision, upgrade
from tests.pg import fresh_database

EXPECTED = {"projects", "tokens", "baymodels", "bays", "bay_credentials", "conductors"}


def _drift(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": False})
    return list(compare_metadata(ctx, Base.metadata))


async def _check(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        await upgrade(engine)  # idempotent: already at head
        head = await current_revision(engine)
        assert head is not None
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            drift = await conn.run_sync(_drift)
        assert tables >= EXPECTED
        assert drift == [], f"models and migrations disagree: {drift}"
    finally:
        await engine.dispose()


async def test_upgrade_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_upgrade_postgres() -> None:
    async with fresh_database() as url:
        await _check(url)
