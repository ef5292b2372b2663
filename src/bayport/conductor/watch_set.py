"""The per-bay watches a conductor runs for one purpose (workload rows, tenant jobs).

Which bays: those whose cluster this conductor hosts, and, for bays nobody hosts, those
rendezvous hashing gives it among the live conductors. The set is re-decided every
heartbeat interval (a conductor that dies hands its bays to the survivors), and a bay
can be taken on at once when it becomes ready (``ensure``). Subclasses say which bays
qualify and build the watch of one bay; everything else is here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, Protocol, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport.conductor.registry import ConductorRegistry
from bayport.db.models import BayRow
from bayport.kube.client import ClusterClients
from bayport.kube.informer import Informers
from bayport.objects.ownership import rendezvous_owner
from bayport.objects.states import BayStatus

log = logging.getLogger(__name__)

# Bays whose cluster is up: objects may be created in them and are watched.
WATCHED_STATES = (BayStatus.CREATE_COMPLETE, BayStatus.UPDATE_COMPLETE, BayStatus.UPDATE_IN_PROGRESS,
                  BayStatus.UPDATE_FAILED)
# What the watches saw last is worth writing at shutdown, but not worth hanging it on.
FLUSH_ON_CLOSE_SECONDS = 5.0


class BayWatchLike(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


class WriterLike(Protocol):
    def start(self) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


W = TypeVar("W", bound=BayWatchLike)


class BayWatchSet(ABC, Generic[W]):
    """The bays this conductor watches for one purpose; started, stopped, re-decided."""

    what: ClassVar[str] = "objects"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clients: ClusterClients,
                 registry: ConductorRegistry, writer: WriterLike, *,
                 informers: Informers | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.clients = clients
        # The process's shared informers; a set of its own (over ``clients``) when none given.
        self._own_informers = informers is None
        self.informers = informers if informers is not None else Informers(clients)
        self.registry = registry
        self.writer = writer
        self.bays: dict[str, W] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    def candidates(self) -> Select[str, str | None]:
        """``select(BayRow.uuid, BayRow.host)`` of the bays that qualify for a watch."""

    @abstractmethod
    def build(self, bay_uuid: str) -> W:
        """The (not yet started) watch of one bay."""

    async def after_sweep(self, watches: list[W]) -> None:
        """Work to do on every watched bay after each sweep (none by default)."""

    def start(self) -> None:
        self.writer.start()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"{self.what}-watch-sweep")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            for watch in list(self.bays.values()):
                await watch.stop()
            self.bays.clear()
        try:
            await asyncio.wait_for(self.writer.flush(), timeout=FLUSH_ON_CLOSE_SECONDS)
        except TimeoutError:
            log.warning("stopping with observed %s states not written (database busy)", self.what)
        await self.writer.close()
        if self._own_informers:
            await self.informers.close()

    def owns(self, bay_uuid: str) -> bool:
        return bay_uuid in self.bays

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("%s watch sweep failed", self.what)
            await asyncio.sleep(self.registry.interval)

    async def _owned(self, session: AsyncSession, bays: list[tuple[str, str | None]]) -> set[str]:
        me = self.registry.id
        live: set[str] | None = None
        owned: set[str] = set()
        for uuid, host in bays:
            if host == me:
                owned.add(uuid)
            elif host is None:
                if live is None:
                    live = await self.registry.live_ids(session) | {me}
                if rendezvous_owner(uuid, live) == me:
                    owned.add(uuid)
        return owned

    async def sweep(self) -> None:
        """Watch exactly the qualifying bays this conductor owns."""
        async with self.sessionmaker() as session:
            rows = (await session.execute(self.candidates())).all()
            owned = await self._owned(session, [(u, h) for u, h in rows])
        async with self._lock:
            for uuid in set(self.bays) - owned:
                await self._stop(uuid)
            for uuid in owned - set(self.bays):
                self._start(uuid)
            watches = list(self.bays.values())
        await self.after_sweep(watches)

    async def ensure(self, bay_uuid: str) -> W | None:
        """Watch ``bay_uuid`` from now on if it is healthy and this conductor's."""
        watch = self.bays.get(bay_uuid)
        if watch is not None:
            return watch
        async with self.sessionmaker() as session:
            row = await session.get(BayRow, bay_uuid, populate_existing=True)
            if row is None or row.status not in WATCHED_STATES:
                return None
            owned = await self._owned(session, [(row.uuid, row.host)])
        async with self._lock:
            if bay_uuid not in owned:
                return None
            return self.bays.get(bay_uuid) or self._start(bay_uuid)

    async def stop(self, bay_uuid: str) -> None:
        async with self._lock:
            await self._stop(bay_uuid)
        await self.clients.forget(bay_uuid)

    def _start(self, bay_uuid: str) -> W:
        watch = self.build(bay_uuid)
        watch.start()
        self.bays[bay_uuid] = watch
        log.info("watching %s of bay %s", self.what, bay_uuid)
        return watch

    async def _stop(self, bay_uuid: str) -> None:
        watch = self.bays.pop(bay_uuid, None)
        if watch is not None:
            await watch.stop()
            log.info("stopped watching %s of bay %s", self.what, bay_uuid)
