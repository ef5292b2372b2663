"""RowWriter's memory of written rows stays bounded: 10,000 pod create/delete cycles leave it
empty and the process's traced memory flat, rows deleted by cascade (never seen deleted) are
forgotten when their bay's watch stops, and past its bound the least recent are forgotten."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

import bayport.db.all_models  # noqa: F401
from bayport.conductor.watch import RowWriter
from bayport.db.base import Base, make_engine, make_sessionmaker, new_uuid

RUNNING = {"status": "Running", "host": "n1", "pod_ip": "10.0.0.1"}


async def _writer(tmp_path: Path, **options: int) -> tuple[RowWriter, AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    writer = RowWriter(make_sessionmaker(engine), **options)
    writer.start()
    return writer, engine


async def _cycles(writer: RowWriter, count: int, batch: int = 500) -> None:
    """``count`` pods created (observed, written) and deleted (gone, written), ``batch`` at once."""
    for _ in range(0, count, batch):
        uuids = [new_uuid() for _ in range(batch)]
        for uuid in uuids:
            writer.observed(uuid, {"status": "Pending", "host": None, "pod_ip": None}, bay_uuid="bay")
            writer.observed(uuid, RUNNING, bay_uuid="bay")
        await writer.flush()
        for uuid in uuids:
            writer.gone(uuid)
        await writer.flush()


async def test_ten_thousand_pod_cycles_leave_the_memory_flat(tmp_path: Path) -> None:
    writer, engine = await _writer(tmp_path)
    try:
        await _cycles(writer, 1_000)             # warm up (statement caches, pools)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await _cycles(writer, 10_000)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert writer.remembered() == 0
        # 10,000 remembered rows would hold several MB; a flat writer stays well under one.
        assert after - before < 1_000_000, after - before
    finally:
        await writer.close()
        await engine.dispose()


async def test_rows_of_a_bay_no_longer_watched_are_forgotten(tmp_path: Path) -> None:
    writer, engine = await _writer(tmp_path)
    try:
        mine = [new_uuid() for _ in range(10_000)]
        other = new_uuid()
        for uuid in mine:
            writer.observed(uuid, RUNNING, bay_uuid="deleted-bay")
        writer.observed(other, RUNNING, bay_uuid="live-bay")
        await writer.flush()
        assert writer.remembered() == 2 * 10_001
        # The bay went by cascade: its rows are gone without a DELETED event for any of them.
        writer.forget_bay("deleted-bay")
        assert writer.remembered() == 2
        writer.observed(other, RUNNING, bay_uuid="live-bay")
        assert not writer._has_pending()         # still remembered: nothing new, no write
    finally:
        await writer.close()
        await engine.dispose()


async def test_the_memory_has_a_bound(tmp_path: Path) -> None:
    writer, engine = await _writer(tmp_path, memory=1_000)
    try:
        uuids = [new_uuid() for _ in range(5_000)]
        for uuid in uuids:
            writer.observed(uuid, RUNNING, bay_uuid="bay")
        await writer.flush()
        assert writer.remembered() == 2 * 1_000
        writer.observed(uuids[-1], RUNNING, bay_uuid="bay")
        assert not writer._has_pending()          # the most recent are the ones kept
        writer.observed(uuids[0], RUNNING, bay_uuid="bay")
        assert writer._has_pending()              # a forgotten row is simply written again
    finally:
        await writer.close()
        await engine.dispose()
