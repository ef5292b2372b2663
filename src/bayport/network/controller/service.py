"""The pod-network controller of one process: a ``BayNetwork`` for every bay it owns.

Every interval it re-decides ownership (``ownership``), starts and stops bay watches,
retries pods whose handling failed, frees the networks of bays that no longer exist and
sweeps expired address leases. Conductors add it with ``install`` (bay hooks: a bay that
becomes ready is watched at once, a bay being deleted loses its networks); ``bayport netd``
runs it alone (``cli.runner.run_netd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bayport.db.models import BayRow
from bayport.db.network import NetworkRow
from bayport.kube.client import ClusterClients
from bayport.kube.informer import Informers
from bayport.network import ipam
from bayport.network.controller.bay import BayInfo, BayNetwork
from bayport.network.controller.ownership import Candidate, ConductorShare, Ownership, candidates

log = logging.getLogger(__name__)

# SQLite has one writer at a time: more than one port transaction at once only spins on the
# lock. PostgreSQL takes row locks, so several run side by side.
SQLITE_DB_SLOTS = 1
DB_SLOTS = 8
# IPAM sweeps expired address leases along with every block it claims; this sweep only
# catches the leases of a crashed process in a bay that allocates nothing any more.
LEASE_SWEEP_SECONDS = 30.0


class PodNetworkController:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ownership: Ownership, *,
                 interval: float, clients: ClusterClients | None = None,
                 informers: Informers | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.ownership = ownership
        self.interval = interval
        # Its own credential: the bay lets only this one set the pod-network annotations.
        self.clients = clients or ClusterClients(sessionmaker, role="network")
        # Pods and namespaces come from the process's informers (a conductor's, shared with
        # workload rows and job records); alone (``bayport netd``) it has its own, read with
        # the network credential: one informer per bay and resource in each process.
        self._own_informers = informers is None
        self.informers = informers if informers is not None else Informers(self.clients)
        bind = sessionmaker.kw.get("bind")
        sqlite = bind is not None and bind.dialect.name == "sqlite"
        self.db_slots = asyncio.Semaphore(SQLITE_DB_SLOTS if sqlite else DB_SLOTS)
        self.bays: dict[str, BayNetwork] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._next_lease_sweep = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="pod-network-sweep")

    async def stop(self) -> None:
        """Stop watching and handling (in-flight handlers are cancelled; the next start
        reconciles whatever they left half done)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            for uuid in list(self.bays):
                await self._stop(uuid)
        if self._own_informers:
            await self.informers.close()
        await self.clients.close()
        bind = self.sessionmaker.kw.get("bind")
        if isinstance(bind, AsyncEngine):
            try:
                await ipam.release_leases(bind)
            except Exception:  # the leases expire by themselves; stopping must not fail
                log.warning("returning reserved addresses at stop failed", exc_info=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("pod network sweep failed")
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        """Handle exactly the bays this controller owns; tidy up after deleted bays."""
        async with self.sessionmaker() as session:
            found = await candidates(session)
            owned = await self.ownership.owned(session, found)
        by_uuid = {c.uuid: c for c in found}
        async with self._lock:
            for uuid in set(self.bays) - owned:
                await self._stop(uuid)
            for uuid in owned - set(self.bays):
                self._start(by_uuid[uuid])
        for network in self.bays.values():
            network.resync()
        await self._free_deleted_bays()
        now = time.monotonic()
        if now >= self._next_lease_sweep:
            self._next_lease_sweep = now + LEASE_SWEEP_SECONDS
            async with self.sessionmaker() as session, session.begin():
                await ipam.reclaim_expired_leases(session)

    async def watch_bay(self, bay_uuid: str) -> BayNetwork | None:
        """Start on ``bay_uuid`` now if it is networked and this controller's (bay ready)."""
        async with self.sessionmaker() as session:
            found = await candidates(session, bay_uuid)
            owned = await self.ownership.owned(session, found)
        async with self._lock:
            if bay_uuid not in owned:
                return None
            return self.bays.get(bay_uuid) or self._start(found[0])

    async def forget_bay(self, bay_uuid: str) -> int:
        """The bay is being deleted: stop watching it and free all its networks and ports."""
        async with self._lock:
            await self._stop(bay_uuid)
        await self.clients.forget(bay_uuid)
        async with self.sessionmaker() as session, session.begin():
            freed = await ipam.release_bay_networks(session, bay_uuid)
        if freed:
            log.info("bay %s: freed %d networks", bay_uuid, freed)
        return freed

    async def settled(self, bay_uuid: str) -> None:
        """Wait until the bay is watched, listed and has no handler pending."""
        while (network := self.bays.get(bay_uuid)) is None:
            await asyncio.sleep(0.01)
        await network.settled()

    async def _free_deleted_bays(self) -> None:
        async with self.sessionmaker() as session:
            orphans = list((await session.execute(select(NetworkRow.bay_uuid).distinct().where(
                ~exists().where(BayRow.uuid == NetworkRow.bay_uuid)))).scalars())
        for uuid in orphans:
            async with self.sessionmaker() as session, session.begin():
                freed = await ipam.release_bay_networks(session, uuid)
            log.info("freed %d networks of deleted bay %s", freed, uuid)

    def _start(self, bay: Candidate) -> BayNetwork:
        network = BayNetwork(BayInfo(uuid=bay.uuid, project_id=bay.project_id, pod_pool=bay.pod_pool),
                             self.clients, self.sessionmaker, self.db_slots, self.informers)
        network.start()
        self.bays[bay.uuid] = network
        log.info("pod network of bay %s: watching", bay.uuid)
        return network

    async def _stop(self, bay_uuid: str) -> None:
        network = self.bays.pop(bay_uuid, None)
        if network is not None:
            await network.stop()
            log.info("pod network of bay %s: stopped", bay_uuid)


# --- conductor plugin ---------------------------------------------------------------------------

BayHook = Callable[[str], Awaitable[None]]


class _Registry(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def interval(self) -> float: ...

    async def live_ids(self, session: AsyncSession) -> set[str]: ...


class _BayHooks(Protocol):
    on_ready: list[BayHook]
    on_deleting: list[BayHook]


class Conductor(Protocol):
    """What ``install`` needs of ``bayport.conductor.service.ConductorService``."""

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def registry(self) -> _Registry: ...

    @property
    def bays(self) -> _BayHooks: ...

    @property
    def informers(self) -> Informers: ...

    @property
    def on_start(self) -> list[Callable[[], Awaitable[None]]]: ...

    @property
    def on_stop(self) -> list[Callable[[], Awaitable[None]]]: ...


_installed: weakref.WeakKeyDictionary[Conductor, PodNetworkController] = weakref.WeakKeyDictionary()


def controller_of(service: Conductor) -> PodNetworkController:
    """The controller ``install`` added to ``service`` (tests and benchmarks look)."""
    return _installed[service]


async def install(service: Conductor) -> PodNetworkController:
    """Run a pod-network controller inside ``service`` (a CONDUCTOR_PLUGINS entry)."""
    registry = service.registry
    controller = PodNetworkController(service.sessionmaker, ConductorShare(registry.id, registry.live_ids),
                                      interval=registry.interval, informers=service.informers)

    async def watch_ready_bay(bay_uuid: str) -> None:
        await controller.watch_bay(bay_uuid)

    async def free_bay_networks(bay_uuid: str) -> None:
        await controller.forget_bay(bay_uuid)

    service.bays.on_ready.append(watch_ready_bay)
    service.bays.on_deleting.append(free_bay_networks)
    service.on_start.append(controller.start)
    service.on_stop.append(controller.stop)
    _installed[service] = controller
    return controller
