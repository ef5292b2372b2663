"""The event log's triggers on SQLite and PostgreSQL: every writer's change is one event in its
own transaction, lease-only updates are none, cascades are seen, ids follow commit order, and
retention moves the horizon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bayport.db.base import make_engine, make_sessionmaker
from bayport.db.events import Scope, horizon, last_id, prune, read_after
from bayport.db.migrate import upgrade
from bayport.db.models import BayModelRow, BayRow
from bayport.db.workloads import WorkloadRow
from tests.pg import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
        await upgrade(eng)
        yield eng
        await eng.dispose()
        return
    async with fresh_database() as url:
        eng = make_engine(url)
        await upgrade(eng)
        yield eng
        await eng.dispose()


async def _bay(engine: AsyncEngine, project: str = "p1") -> str:
    async with make_sessionmaker(engine)() as s:
        tm = BayModelRow(name="t", project_id=project, user_id="u")
        s.add(tm)
        await s.flush()
        bay = BayRow(name="b", project_id=project, user_id="u", baymodel_id=tm.uuid,
                     status="CREATE_IN_PROGRESS")
        s.add(bay)
        await s.commit()
        return bay.uuid


async def test_writes_become_events_in_order(engine: AsyncEngine) -> None:
    uuid = await _bay(engine)
    sm = make_sessionmaker(engine)
    async with sm() as s:
        # A lease renewal changes no watched column: no event.
        await s.execute(update(BayRow).where(BayRow.uuid == uuid).values(conductor_id="c1"))
        await s.execute(update(BayRow).where(BayRow.uuid == uuid).values(status="CREATE_COMPLETE"))
        await s.execute(insert(WorkloadRow).values(uuid="w1", kind="Pod", project_id="p1", user_id="u",
                                                   bay_uuid=uuid, name="web", status="Pending"))
        await s.commit()
    async with sm() as s:
        # A rolled-back change leaves nothing behind.
        await s.execute(update(BayRow).where(BayRow.uuid == uuid).values(status="UPDATE_IN_PROGRESS"))
        await s.rollback()
    async with sm() as s:
        await s.execute(update(WorkloadRow).where(WorkloadRow.uuid == "w1").values(status="Running"))
        await s.execute(delete(BayRow).where(BayRow.uuid == uuid))  # cascades to the pod row
        await s.commit()
    async with sm() as s:
        events = await read_after(s, 0)
        seen = [(e.kind, e.action, e.status) for e in events]
        assert seen[:5] == [
            ("baymodel", "created", None), ("bay", "created", "CREATE_IN_PROGRESS"),
            ("bay", "updated", "CREATE_COMPLETE"), ("pod", "created", "Pending"),
            ("pod", "updated", "Running")]
        # The cascade's order differs between the two databases; both deletions are there.
        assert sorted(seen[5:]) == [("bay", "deleted", "CREATE_COMPLETE"),
                                    ("pod", "deleted", "Running")]
        ids = [e.id for e in events]
        assert ids == sorted(ids) and ids[0] > 0
        assert all(e.project_id == "p1" and e.at is not None for e in events)
        assert {e.bay_uuid for e in events[1:]} == {uuid}
        assert await last_id(s) == ids[-1]
        pods = await read_after(s, 0, Scope(project_id="p1", kinds=frozenset({"pod"})))
        assert len(pods) == 3
        assert await read_after(s, 0, Scope(project_id="p2")) == []


async def test_soft_delete_is_a_deleted_event(engine: AsyncEngine) -> None:
    uuid = await _bay(engine)
    sm = make_sessionmaker(engine)
    async with sm() as s:
        await s.execute(insert(WorkloadRow).values(uuid="w2", kind="Service", project_id="p1",
                                                   user_id="u", bay_uuid=uuid, name="svc",
                                                   status="Active"))
        await s.execute(update(WorkloadRow).where(WorkloadRow.uuid == "w2")
                        .values(deleted_at=text("CURRENT_TIMESTAMP")))
        await s.commit()
        events = await read_after(s, 0, Scope(kinds=frozenset({"service"})))
        assert [e.action for e in events] == ["created", "deleted"]


async def test_retention_moves_the_horizon(engine: AsyncEngine) -> None:
    for _ in range(3):
        await _bay(engine)
    async with make_sessionmaker(engine)() as s:
        newest = await last_id(s)
        assert await prune(s, keep=timedelta(days=1), keep_rows=2) == newest - 2
        assert [e.id for e in await read_after(s, 0)] == [newest - 1, newest]
        assert await horizon(s) == newest - 2
        assert await prune(s, keep=timedelta(seconds=-1), keep_rows=100) == newest
        assert await read_after(s, 0) == [] and await last_id(s) == newest
    await _bay(engine)
    async with make_sessionmaker(engine)() as s:
        # Ids are never reused after the log was emptied.
        assert min(e.id for e in await read_after(s, 0)) > newest


@pytest.mark.postgres
async def test_postgres_ids_follow_commit_order() -> None:
    """The transaction that changed its row first but commits last gets the larger id, so a
    reader that has seen id N can never be handed an id below N later."""
    async with fresh_database() as url:
        engine = make_engine(url)
        try:
            await upgrade(engine)
            first = await _bay(engine)
            second = await _bay(engine)
            sm = make_sessionmaker(engine)
            async with sm() as slow, sm() as fast:
                await slow.execute(update(BayRow).where(BayRow.uuid == first).values(status="A"))
                await fast.execute(update(BayRow).where(BayRow.uuid == second).values(status="B"))
                await fast.commit()
                async with sm() as reader:
                    seen = await read_after(reader, 0, Scope(kinds=frozenset({"bay"})))
                    assert seen[-1].status == "B"
                await asyncio.sleep(0)
                await slow.commit()
            async with sm() as reader:
                events = await read_after(reader, seen[-1].id)
                assert [e.status for e in events] == ["A"]
        finally:
            await engine.dispose()
