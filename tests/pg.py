"""A throw-away PostgreSQL database per test (CI: 127.0.0.1:5432, trust auth, db `test`)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

from tests.conftest import require

PG_DSN = os.environ.get("BAYPORT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def pg_available() -> bool:
    try:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN, timeout=3)
        await conn.close()
        return True
    except (OSError, Exception):
        return False


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create ``bayport_t_<random>``, yield its SQLAlchemy URL, drop it afterwards."""
    import asyncpg

    require(await pg_available(), f"PostgreSQL is not reachable at {PG_DSN}")
    name = f"bayport_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
