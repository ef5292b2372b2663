"""Conductor liveness: each conductor registers a row and heartbeats it.

A conductor whose heartbeat is older than three intervals is dead; its
IN_PROGRESS rows are taken over by a live one (recovery.py). The id is unique
per process start, so a restarted conductor is a new conductor.

The same rule binds the conductor itself: it holds a *lease* that lasts ``dead_after`` from
its last heartbeat that the database confirmed. When the lease runs out (the database was
unreachable that long) or its row is gone (another conductor forgot it), others may already
have taken its bays and operations, so ``lost`` is set and the process must stop touching
work: ``bayport conductor`` exits (a supervisor starts it again as a new conductor, whose
bays are re-hosted cleanly). Before, such a conductor's heartbeat UPDATE matched nothing, it
never re-registered, and it went on serving bays that had been re-hosted elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport.db.base import utcnow
from bayport.db.models import ConductorRow

log = logging.getLogger(__name__)


def new_conductor_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ConductorRegistry:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], interval: float,
                 conductor_id: str | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.interval = interval
        self.id = conductor_id or new_conductor_id()
        self._task: asyncio.Task[None] | None = None
        self._lease_until = 0.0                  # loop time
        self.lost = asyncio.Event()
        self.lost_reason = ""

    @property
    def dead_after(self) -> timedelta:
        return timedelta(seconds=self.interval * 3)

    def lease_current(self) -> bool:
        return not self.lost.is_set() and asyncio.get_running_loop().time() < self._lease_until

    def _renew(self, began: float) -> None:
        # Counted from before the UPDATE was sent: others judge by the time it wrote.
        self._lease_until = began + self.dead_after.total_seconds()

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            log.error("conductor %s: %s; it must stop touching work", self.id, reason)
            self.lost.set()

    async def register(self) -> None:
        began = asyncio.get_running_loop().time()
        async with self.sessionmaker() as session:
            session.add(ConductorRow(id=self.id, hostname=socket.gethostname(), pid=os.getpid()))
            await session.commit()
        self._renew(began)
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{self.id}")
        log.info("conductor %s registered", self.id)

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.lost.is_set():
            await asyncio.sleep(self.interval)
            began = loop.time()
            try:
                async with self.sessionmaker() as session:
                    result = await session.execute(
                        update(ConductorRow).where(ConductorRow.id == self.id)
                        .values(heartbeat_at=utcnow()))
                    await session.commit()
            except Exception as exc:  # a missed beat is survivable while the lease lasts
                if loop.time() >= self._lease_until:
                    self._lose(f"no heartbeat reached the database for "
                               f"{self.dead_after.total_seconds():g} s ({type(exc).__name__}); "
                               "other conductors count it dead")
                else:
                    log.warning("heartbeat of %s failed (%s: %s); the lease lasts %.1f s more",
                                self.id, type(exc).__name__, exc, self._lease_until - loop.time())
                continue
            if result.rowcount != 1:  # type: ignore[attr-defined]
                self._lose("its registration row is gone: another conductor counted it dead")
            elif loop.time() >= self._lease_until:
                self._lose(f"its heartbeat took {loop.time() - began:.1f} s and the lease ran out")
            else:
                self._renew(began)

    async def live_ids(self, session: AsyncSession) -> set[str]:
        cutoff = utcnow() - self.dead_after
        rows = await session.execute(select(ConductorRow.id).where(ConductorRow.heartbeat_at >= cutoff))
        return {r[0] for r in rows}

    async def forget_dead(self, session: AsyncSession) -> None:
        cutoff = utcnow() - self.dead_after * 10
        await session.execute(delete(ConductorRow).where(ConductorRow.heartbeat_at < cutoff))

    async def unregister(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with self.sessionmaker() as session:
                await session.execute(delete(ConductorRow).where(ConductorRow.id == self.id))
                await session.commit()
        except Exception as exc:  # the database may be what made us stop; the row then ages out
            log.warning("conductor %s: could not remove its row: %s: %s", self.id,
                        type(exc).__name__, exc)

    async def rejoin(self) -> None:
        """Register again under the same id once the database answers (``bayport serve``: the
        only conductor of its data dir, so nobody else can have taken its work)."""
        while True:
            try:
                async with self.sessionmaker() as session:
                    await session.merge(ConductorRow(id=self.id, hostname=socket.gethostname(),
                                                     pid=os.getpid(), heartbeat_at=utcnow()))
                    await session.commit()
                break
            except Exception as exc:
                log.warning("conductor %s: rejoining failed (%s); retrying", self.id, exc)
                await asyncio.sleep(self.interval)
        self.lost.clear()
        self._renew(asyncio.get_running_loop().time())
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{self.id}")
        log.warning("conductor %s rejoined after: %s", self.id, self.lost_reason)
