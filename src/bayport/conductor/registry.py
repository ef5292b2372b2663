"""Conductor liveness: each conductor registers a row and heartbeats it.

A conductor whose heartbeat is older than three intervals is dead; its
IN_PROGRESS rows are taken over by a live one (recovery.py). The id is unique
per process start, so a restarted conductor is a new conductor.
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

    @property
    def dead_after(self) -> timedelta:
        return timedelta(seconds=self.interval * 3)

    async def register(self) -> None:
        async with self.sessionmaker() as session:
            session.add(ConductorRow(id=self.id, hostname=socket.gethostname(), pid=os.getpid()))
            await session.commit()
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{self.id}")
        log.info("conductor %s registered", self.id)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self.sessionmaker() as session:
                    await session.execute(update(ConductorRow).where(ConductorRow.id == self.id)
                                          .values(heartbeat_at=utcnow()))
                    await session.commit()
            except Exception:  # a missed beat is survivable; the next one retries
                log.exception("heartbeat of %s failed", self.id)

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
        async with self.sessionmaker() as session:
            await session.execute(delete(ConductorRow).where(ConductorRow.id == self.id))
            await session.commit()
