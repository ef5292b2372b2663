"""Databases for the IPAM tests: a SQLite file in the test's tmp dir, or a fresh
PostgreSQL database ``bayport_test_<random>`` dropped afterwards, so concurrent
runs of the suite never share tables.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bayport.db.base import Base, make_engine, make_sessionmaker
from bayport.db.network import (
    AddressLeaseRow,
    FreeAddressRow,
    IPAllocationRow,
    NetworkRow,
    PortRow,
    SubnetRow,
)
from bayport.network.ipam import AddressAllocator, install_allocator
from tests.conftest import require

PG_SERVER = "postgres@127.0.0.1:5432"
IPAM_TABLES: list[Table] = [m.__table__ for m in (  # type: ignore[misc]
    NetworkRow, SubnetRow, PortRow, IPAllocationRow, FreeAddressRow, AddressLeaseRow)]

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def postgres_reachable() -> bool:
    try:
        conn = await asyncpg.connect(f"postgresql://{PG_SERVER}/test", timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty database of ``kind`` that lives as long as the context."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ipam.db'}"
        return
    require(await postgres_reachable(), f"PostgreSQL not reachable at {PG_SERVER}")
    name = f"bayport_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(f"postgresql://{PG_SERVER}/test")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://{PG_SERVER}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: Base.metadata.create_all(sync, tables=IPAM_TABLES))


@asynccontextmanager
async def ipam_engine(url: str, *, create: bool = False, **allocator: Any) -> AsyncIterator[AsyncEngine]:
    """An engine with its own allocator (one engine here stands for one controller process)."""
    engine = make_engine(url)
    try:
        if create:
            await create_tables(engine)
        install_allocator(engine, AddressAllocator(**allocator))
        yield engine
    finally:
        await engine.dispose()


def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


async def count_rows(engine: AsyncEngine, model: type[Base], **where: Any) -> int:
    stmt = select(func.count()).select_from(model)
    for column, value in where.items():
        stmt = stmt.where(getattr(model, column) == value)
    async with make_sessionmaker(engine)() as session:
        return int((await session.execute(stmt)).scalar_one())
