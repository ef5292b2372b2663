"""A conductor presumed dead stops touching work: its lease (registry.py) is lost when its row
is deleted by another conductor or when no heartbeat reached the database for ``dead_after``.

Before: after a long database outage another conductor deleted the first one's row; its
heartbeat UPDATE then matched nothing, it never re-registered, and it kept consuming work
for bays that had been re-hosted elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import delete, select
from sqlalchemy.engine import make_url

from bayport.conductor.registry import ConductorRegistry
from bayport.db.base import make_engine, make_sessionmaker
from bayport.db.migrate import upgrade
from bayport.db.models import ConductorRow
from tests.pg import fresh_database


@pytest.fixture
async def sessionmaker(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_a_deleted_row_loses_the_lease(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    registry = ConductorRegistry(sessionmaker, interval=0.1)
    await registry.register()
    try:
        assert registry.lease_current()
        async with sessionmaker() as session:
            await session.execute(delete(ConductorRow))
            await session.commit()
        await asyncio.wait_for(registry.lost.wait(), 2)
        assert not registry.lease_current()
        assert "row is gone" in registry.lost_reason
        await registry.rejoin()
        assert registry.lease_current()
        async with sessionmaker() as session:
            assert (await session.execute(select(ConductorRow.id))).scalars().all() == [registry.id]
    finally:
        await registry.unregister()


class Unreachable:
    """A sessionmaker whose database has gone away."""

    def __call__(self) -> object:
        raise OSError("connection refused")


async def test_a_database_outage_longer_than_the_lease_loses_it(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    registry = ConductorRegistry(sessionmaker, interval=0.1)
    await registry.register()
    registry.sessionmaker = Unreachable()  # type: ignore[assignment]
    began = time.monotonic()
    await asyncio.wait_for(registry.lost.wait(), 3)
    held = time.monotonic() - began
    assert registry.dead_after.total_seconds() - 0.15 <= held <= registry.dead_after.total_seconds() + 0.3
    assert "no heartbeat reached the database" in registry.lost_reason
    registry.sessionmaker = sessionmaker
    await registry.unregister()


@pytest.mark.postgres
async def test_bayport_conductor_whose_row_is_deleted_starts_again_as_a_new_one(
        tmp_path: Path) -> None:
    async with fresh_database() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BAYPORT_")}
        env.update(BAYPORT_DATABASE_URL=url, BAYPORT_DATA_DIR=str(tmp_path / "data"),
                   BAYPORT_HEARTBEAT_INTERVAL="0.3")
        bayport = str(Path(sys.executable).parent / "bayport")
        subprocess.run([bayport, "db", "upgrade"], env=env, check=True, capture_output=True)
        dsn = str(make_url(url).set(drivername="postgresql"))
        log_path = tmp_path / "conductor.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([bayport, "conductor"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            conn = await asyncpg.connect(dsn)
            try:
                first = await _conductors(conn, lambda ids: len(ids) == 1)
                await conn.execute("DELETE FROM conductors")
                second = await _conductors(conn, lambda ids: len(ids) == 1 and ids != first)
            finally:
                await conn.close()
            assert second != first
            assert proc.poll() is None, log_path.read_text()
            text = log_path.read_text()
            assert "lost its lease" in text and "starting again as a new conductor" in text, text
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log_path.read_text()


async def _conductors(conn: asyncpg.Connection, done: object, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = sorted(r["id"] for r in await conn.fetch("SELECT id FROM conductors"))
        if done(ids):  # type: ignore[operator]
            return ids
        assert time.monotonic() < deadline, f"conductors: {ids}"
        await asyncio.sleep(0.1)
