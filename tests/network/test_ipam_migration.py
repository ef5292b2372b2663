"""Migration 0002_network creates exactly the tables bayport.db.network declares, on
SQLite and PostgreSQL, and its downgrade removes them again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from bayport.db import migrate
from bayport.db.base import Base, make_engine
from tests.network.ipam_support import BACKENDS, IPAM_TABLES, database_url

MINE = {t.name for t in IPAM_TABLES}


def _differences(connection: Connection) -> list[Any]:
    def mine(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return (name if type_ == "table" else getattr(table, "name", None)) in MINE

    context = MigrationContext.configure(connection, opts={
        "include_object": mine, "compare_type": True, "target_metadata": Base.metadata})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrade_matches_the_models_and_downgrade_removes_them(backend: str, tmp_path: Path) -> None:
    async with database_url(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            await migrate.upgrade(engine, "0002_network")
            assert await migrate.current_revision(engine) == "0002_network"
            async with engine.connect() as conn:
                assert await conn.run_sync(_tables) >= MINE
                assert await conn.run_sync(_differences) == []

            async with engine.begin() as conn:
                await conn.run_sync(
                    lambda sync: command.downgrade(migrate.alembic_config(sync), "0001_core"))
            async with engine.connect() as conn:
                assert not MINE & await conn.run_sync(_tables)
            assert await migrate.current_revision(engine) == "0001_core"
        finally:
            await engine.dispose()
