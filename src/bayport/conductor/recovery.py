"""Recovery: nothing stays IN_PROGRESS.

A periodic sweep, run by every conductor (the database claim makes it safe):
1. rows past their deadline become *_FAILED with a reason naming the timeout;
2. rows IN_PROGRESS whose conductor is dead, or that nobody picked up since
   before this conductor started (an in-memory message lost with its process),
   are resumed here;
3. local bays whose hosting conductor died are re-hosted here: the embedded cluster starts
   again from its journal at the same address, with every object (``drivers.local``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport.conductor.bays import BayOperations, bay_of, baymodel_of
from bayport.conductor.registry import ConductorRegistry
from bayport.db.base import utcnow
from bayport.db.models import BayModelRow, BayRow
from bayport.objects.states import IN_PROGRESS, OPERATIONS, BayStatus, operation_of

log = logging.getLogger(__name__)
HEALTHY_STATES = (BayStatus.CREATE_COMPLETE, BayStatus.UPDATE_COMPLETE, BayStatus.UPDATE_FAILED)


class Recovery:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], registry: ConductorRegistry,
                 ops: BayOperations) -> None:
        self.sessionmaker = sessionmaker
        self.registry = registry
        self.ops = ops
        self.started_at: datetime = utcnow()
        self._task: asyncio.Task[None] | None = None
        self._working: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="recovery")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._working) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("recovery sweep failed")
            await asyncio.sleep(self.registry.interval)

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._working.add(task)
        task.add_done_callback(self._working.discard)

    async def sweep_once(self) -> None:
        if not self.registry.lease_current():
            return  # presumed dead ourselves: taking over others' work now would be a second owner
        async with self.sessionmaker() as session:
            await self._expire(session)
            live = await self.registry.live_ids(session)
            live.add(self.registry.id)
            await self._adopt(session, live)
            await self._rehost(session, live)
            await self.registry.forget_dead(session)
            await session.commit()

    async def _expire(self, session: AsyncSession) -> None:
        rows = (await session.execute(select(BayRow).where(
            BayRow.status.in_([s.value for s in IN_PROGRESS]), BayRow.deadline_at < utcnow()))).scalars()
        for row in list(rows):
            op = operation_of(row.status)
            if op is None:
                continue
            failed = OPERATIONS[op][3]
            reason = (f"timed out after {row.create_timeout} minutes (create_timeout) while "
                      f"{row.status}; last conductor: {row.conductor_id or 'none'}")
            await session.execute(update(BayRow).where(BayRow.uuid == row.uuid,
                                                       BayRow.status == row.status)
                                  .values(status=failed.value, status_reason=reason,
                                          conductor_id=None, deadline_at=None)
                                  .execution_options(synchronize_session=False))
            log.warning("bay %s: %s", row.uuid, reason)
        await session.commit()

    async def _adopt(self, session: AsyncSession, live: set[str]) -> None:
        rows = (await session.execute(select(BayRow.uuid, BayRow.status, BayRow.conductor_id,
                                             BayRow.updated_at, BayRow.created_at).where(
            BayRow.status.in_([s.value for s in IN_PROGRESS])))).all()
        for uuid, status, owner, updated_at, created_at in rows:
            if uuid in self.ops.locks._locks or status is None:  # being worked on here
                continue
            if owner is None:
                # Nobody claimed it: orphaned only if it was queued before this conductor existed.
                if (updated_at or created_at) >= self.started_at:
                    continue
            elif owner in live:
                continue
            source = f"conductor {owner}, which stopped" if owner else "a message lost before this start"
            log.info("bay %s: taking over %s from %s", uuid, status, source)
            note = f"taken over by {self.registry.id} from {source}"
            self._spawn(self.ops.resume(uuid, status, note), f"resume-{uuid}")

    async def _rehost(self, session: AsyncSession, live: set[str]) -> None:
        stmt = (select(BayRow).join(BayModelRow, BayModelRow.uuid == BayRow.baymodel_id)
                .where(BayModelRow.driver == "local", BayRow.host.is_not(None),
                       BayRow.status.in_([s.value for s in HEALTHY_STATES])))
        for row in list((await session.execute(stmt)).scalars()):
            if row.host in live or row.uuid in self.ops.locks._locks:
                continue
            self._spawn(self._rehost_one(row.uuid, row.host or ""), f"rehost-{row.uuid}")

    async def _rehost_one(self, uuid: str, old_host: str) -> None:
        """Claim the bay, start its cluster here with no session open (bays.py says why), then
        record where it now answers."""
        async with self.ops.locks.hold(uuid):
            async with self.sessionmaker() as session:
                claimed = await session.execute(
                    update(BayRow).where(BayRow.uuid == uuid, BayRow.host == old_host)
                    .values(host=self.registry.id).execution_options(synchronize_session=False))
                await session.commit()
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    return
                row = await session.get(BayRow, uuid, populate_existing=True)
                model = await session.get(BayModelRow, row.baymodel_id) if row else None
                if row is None or model is None:
                    return
                bay, baymodel = bay_of(row), baymodel_of(model)
            driver = self.ops.drivers.get(baymodel.driver)
            try:
                result = await driver.create(bay, baymodel)
            except Exception as exc:
                log.exception("bay %s: re-hosting failed", uuid)
                async with self.sessionmaker() as session:
                    await session.execute(update(BayRow).where(BayRow.uuid == uuid).values(
                        health_status="UNHEALTHY",
                        status_reason=f"its conductor {old_host} died and re-hosting failed: {exc}"))
                    await session.commit()
                return
            async with self.sessionmaker() as session:
                values = await self.ops._record(session, uuid, result, hosted=True)
                notes = "; ".join(result.notes)
                values["status_reason"] = (f"re-hosted on conductor {self.registry.id} after "
                                           f"{old_host} stopped{'; ' + notes if notes else ''}")
                await session.execute(update(BayRow).where(BayRow.uuid == uuid).values(**values))
                await session.commit()
            log.warning("bay %s: %s", uuid, values["status_reason"])
        await self.ops._run_hooks(self.ops.on_ready, uuid)
