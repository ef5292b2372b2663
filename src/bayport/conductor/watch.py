"""Keeping workload rows current: a consumer of each bay's informers, and a coalescing row writer.

Status is never polled. For every bay it owns, a conductor follows pods, services and
replication controllers carrying the ``bayport.io/uuid`` label (``BayWatch``, a consumer of
the bay's shared informers, ``kube.informer``, which resume, relist and time out), turns each
event into row values (``kube.kinds.observe``) and hands them to ``RowWriter``, which keeps
only the latest values per row and writes whatever accumulated in one transaction, so a
burst of events costs one commit and a quiet cluster costs none. Every snapshot (after each
relist) marks rows whose object vanished meanwhile as deleted. ``Watches`` decides which
bays are this conductor's (the hosting conductor for embedded bays, rendezvous hashing over
live conductors for the rest) and starts and stops watches; ``conductor.workloads`` wires it to the bay hooks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, cast

from lightkube.resources.core_v1 import Pod
from sqlalchemy import Select, Table, Update, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport import errors
from bayport.conductor.batch_writer import BatchWriter
from bayport.conductor.registry import ConductorRegistry
from bayport.conductor.watch_set import WATCHED_STATES, BayWatchSet
from bayport.db.base import utcnow
from bayport.db.models import BayRow
from bayport.db.workloads import WorkloadRow
from bayport.kube.client import ClusterClients, cluster_errors, is_not_found
from bayport.kube.informer import Informers, Snapshot, Subscription
from bayport.kube.kinds import KINDS, UUID_LABEL, WorkloadKind, observe, uuid_of

log = logging.getLogger(__name__)

# Rows in these states are being changed by a request right now; the watch leaves them be.
CREATING, DELETING, DELETED = "Creating", "Deleting", "Deleted"
# What the API writes when the conductor did not answer in time: the outcome is not known.
UNKNOWN = "Unknown"
DELETED_OUTSIDE = "the object was deleted from the cluster, not through Bayport"
NEVER_CREATED = "its create request was interrupted before the object existed"
NEVER_CREATED_AFTER = ("its create request was lost before the object existed (the API or the "
                       "conductor stopped, or the message expired); the name is free again")
# A create request is long over after this (the RPC timeout is 30 s by default).
STALE_CREATING = timedelta(minutes=10)
# Rows whose last written values are remembered (to skip writes that change nothing). The
# memory is only an optimisation: past the bound the least recently written are forgotten,
# and a bay's entries go when its watch stops (rows deleted by cascade leave no trace).
WRITTEN_MEMORY = 50_000


RowBatch = tuple[dict[str, dict[str, Any]], dict[str, str]]


class RowWriter(BatchWriter[RowBatch]):
    """Latest observed values per row, written in batches by one task.

    What was last written per row is remembered, bounded (``WRITTEN_MEMORY``, least recently
    written first out) and per bay (``forget_bay`` when the bay's watch stops).
    """

    what = "observed workload states"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *,
                 memory: int = WRITTEN_MEMORY) -> None:
        super().__init__(sessionmaker)
        self.memory = memory
        self._pending: dict[str, dict[str, Any]] = {}
        self._gone: dict[str, str] = {}
        self._written: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._bay_of: dict[str, str] = {}

    def remembered(self) -> int:
        """Rows whose last written values are kept (tests watch it stay bounded)."""
        return len(self._written) + len(self._bay_of)

    def observed(self, uuid: str, values: dict[str, Any], *, bay_uuid: str | None = None) -> None:
        """Record what the cluster says about row ``uuid``; nothing new → no write."""
        last = self._written.get(uuid)
        if uuid not in self._pending and last is not None and all(
                last.get(k) == v for k, v in values.items()):
            return
        self._pending.setdefault(uuid, {}).update(values)
        if bay_uuid is not None:
            self._bay_of[uuid] = bay_uuid
        self._kick()

    def gone(self, uuid: str, reason: str = DELETED_OUTSIDE) -> None:
        """The object of row ``uuid`` no longer exists in the cluster."""
        self._pending.pop(uuid, None)
        self.forget(uuid)
        self._gone[uuid] = reason
        self._kick()

    def forget(self, uuid: str) -> None:
        """Drop what is remembered about ``uuid`` (its row was written or deleted elsewhere)."""
        self._written.pop(uuid, None)
        self._bay_of.pop(uuid, None)

    def forget_bay(self, bay_uuid: str) -> None:
        """Nothing more is watched of ``bay_uuid``: its rows may go by cascade, unseen."""
        for uuid in [u for u, bay in self._bay_of.items() if bay == bay_uuid]:
            if uuid not in self._pending:
                self.forget(uuid)

    def _has_pending(self) -> bool:
        return bool(self._pending or self._gone)

    def _take(self) -> RowBatch:
        batch, self._pending, self._gone = (self._pending, self._gone), {}, {}
        return batch

    def _put_back(self, batch: RowBatch) -> None:
        for uuid, values in batch[0].items():
            self._pending[uuid] = {**values, **self._pending.get(uuid, {})}
        for uuid, reason in batch[1].items():
            self._gone.setdefault(uuid, reason)

    def _size(self, batch: RowBatch) -> int:
        return len(batch[0]) + len(batch[1])

    async def _write_batch(self, batch: RowBatch) -> None:
        await self._write(*batch)

    def _stored(self, batch: RowBatch) -> None:
        for uuid, values in batch[0].items():
            self._written.setdefault(uuid, {}).update(values)
            self._written.move_to_end(uuid)
        while len(self._written) > self.memory:
            uuid, _ = self._written.popitem(last=False)
            self._bay_of.pop(uuid, None)

    async def _write(self, batch: dict[str, dict[str, Any]], gone: dict[str, str]) -> None:
        """One transaction; rows with the same observed fields share one executemany UPDATE."""
        if not batch and not gone:
            return
        now = utcnow()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for uuid, values in batch.items():
            params = {f"v_{k}": v for k, v in values.items()}
            params.update(v_uuid=uuid, v_updated_at=now)
            groups.setdefault(tuple(sorted(values)), []).append(params)
        for uuid, reason in gone.items():
            groups.setdefault(_GONE, []).append({"v_uuid": uuid, "v_updated_at": now, "v_deleted_at": now,
                                                 "v_status": DELETED, "v_status_reason": reason})
        async with self.sessionmaker() as session:
            for columns, rows in groups.items():
                await session.execute(_update_statement(columns), rows)
            await session.commit()


_TABLE = cast(Table, WorkloadRow.__table__)
_GONE = ("deleted_at", "status", "status_reason")


@functools.lru_cache(maxsize=64)
def _update_statement(columns: tuple[str, ...]) -> Update:
    """UPDATE of ``columns`` (+ updated_at) of one live row, by uuid; never of a row being deleted."""
    table = _TABLE.c
    return (update(_TABLE)
            .where(table.uuid == bindparam("v_uuid"), table.deleted_at.is_(None),
                   table.status != DELETING)
            .values({name: bindparam(f"v_{name}") for name in (*columns, "updated_at")}))


class BayWatch:
    """One bay's labelled pods, services and RCs, followed through the bay's shared informers.

    Without ``informers`` (tests) it has its own set over ``clients``, stopped with it.
    """

    def __init__(self, bay_uuid: str, clients: ClusterClients, writer: RowWriter,
                 sessionmaker: async_sessionmaker[AsyncSession],
                 never_created_after: float = STALE_CREATING.total_seconds(), *,
                 informers: Informers | None = None) -> None:
        self.bay_uuid = bay_uuid
        self.never_created_after = never_created_after
        self.clients = clients
        self.writer = writer
        self.sessionmaker = sessionmaker
        self.synced = {kind.kind: asyncio.Event() for kind in KINDS.values()}
        self._own_informers = informers is None
        self.informers = informers if informers is not None else Informers(clients)
        self._subscriptions: list[Subscription] = []

    def start(self) -> None:
        # Pods are shared with job records and the pod network: asked for unfiltered, as they
        # do; services and RCs only Bayport labelled, filtered by the server.
        self._subscriptions = [
            self.informers.subscribe(self.bay_uuid, kind.resource, "workloads",
                                     functools.partial(self._on_snapshot, kind),
                                     functools.partial(self._on_event, kind),
                                     labels=() if kind.resource is Pod else (UUID_LABEL,))
            for kind in KINDS.values()]

    async def stop(self) -> None:
        for sub in self._subscriptions:
            await self.informers.unsubscribe(sub)
        self._subscriptions.clear()
        if self._own_informers:
            await self.informers.close()
        self.writer.forget_bay(self.bay_uuid)

    async def wait_synced(self) -> None:
        for event in self.synced.values():
            await event.wait()

    async def _on_event(self, kind: WorkloadKind, event: str, obj: Any) -> None:
        self._apply(kind, event, obj)

    def _apply(self, kind: WorkloadKind, event: str, obj: Any) -> None:
        uuid = uuid_of(obj)
        if uuid is None:
            return
        if event == "DELETED":
            self.writer.gone(uuid)
        elif event in ("ADDED", "MODIFIED"):
            self.writer.observed(uuid, observe(kind, obj), bay_uuid=self.bay_uuid)

    async def _on_snapshot(self, kind: WorkloadKind, snapshot: Snapshot) -> None:
        """Observe every labelled object now; rows whose object is gone are marked deleted."""
        present: set[str] = set()
        for obj in snapshot.objects:
            uuid = uuid_of(obj)
            if uuid is not None:
                present.add(uuid)
                self.writer.observed(uuid, observe(kind, obj), bay_uuid=self.bay_uuid)
        missing = await self._rows_missing_since(kind, snapshot.listed_at, present)
        for uuid, status in missing:
            log.info("bay %s: %s %s is not in the cluster", self.bay_uuid, kind.kind, uuid)
            self.writer.gone(uuid, NEVER_CREATED if status == CREATING else DELETED_OUTSIDE)
        self.synced[kind.kind].set()

    async def _rows_missing_since(self, kind: WorkloadKind, started: datetime,
                                  present: set[str]) -> list[tuple[str, str]]:
        """Live rows without an object. Rows written after the list began may belong to objects
        created after it, and a row still ``Creating`` may be in a request right now: both are
        skipped, the latter unless its request is long over."""
        abandoned = started - STALE_CREATING
        async with self.sessionmaker() as session:
            rows = await session.execute(select(WorkloadRow.uuid, WorkloadRow.status).where(
                WorkloadRow.bay_uuid == self.bay_uuid, WorkloadRow.kind == kind.kind,
                WorkloadRow.deleted_at.is_(None), WorkloadRow.status != DELETING,
                or_(WorkloadRow.status != CREATING, WorkloadRow.created_at < abandoned),
                or_(WorkloadRow.updated_at < started,
                    and_(WorkloadRow.updated_at.is_(None), WorkloadRow.created_at < started))))
        return [(uuid, status) for uuid, status in rows if uuid not in present]


    async def settle_lost(self) -> None:
        """Rows a create request left ``Creating`` (or ``Unknown``, when the API gave up waiting)
        with no object, past the time any delivery of that request could still run: the API
        was killed before its message reached the broker, or the message expired unhandled.
        Each is checked with the cluster: an object carrying the row's uuid finishes the row;
        none fails it with the reason and frees its name (the row counts as deleted)."""
        if not all(event.is_set() for event in self.synced.values()):
            return
        cutoff = utcnow() - timedelta(seconds=self.never_created_after)
        async with self.sessionmaker() as session:
            rows = (await session.execute(select(
                WorkloadRow.uuid, WorkloadRow.kind, WorkloadRow.name, WorkloadRow.namespace).where(
                WorkloadRow.bay_uuid == self.bay_uuid, WorkloadRow.deleted_at.is_(None),
                WorkloadRow.status.in_((CREATING, UNKNOWN)), WorkloadRow.k8s_uid.is_(None),
                WorkloadRow.created_at < cutoff))).all()
        if not rows:
            return
        client = await self.clients.get(self.bay_uuid)
        for uuid, kind_name, name, namespace in rows:
            kind = KINDS[kind_name]
            try:
                async with cluster_errors(f"{kind.kind} read"):
                    obj = await client.get(kind.resource, name, namespace=namespace)
            except errors.ClusterAPIError as exc:
                if not is_not_found(exc):
                    raise
                obj = None
            if obj is not None and uuid_of(obj) == uuid:
                self.writer.observed(uuid, observe(kind, obj), bay_uuid=self.bay_uuid)
                continue
            log.warning("bay %s: %s %s (%s/%s) was never created in the cluster; failing its row",
                        self.bay_uuid, kind.kind, uuid, namespace, name)
            self.writer.gone(uuid, NEVER_CREATED_AFTER)


class Watches(BayWatchSet[BayWatch]):
    """The bays whose workload rows this conductor keeps current."""

    what = "workloads"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clients: ClusterClients,
                 registry: ConductorRegistry, *,
                 never_created_after: float = STALE_CREATING.total_seconds(),
                 informers: Informers | None = None) -> None:
        self.never_created_after = never_created_after
        self.writer: RowWriter = RowWriter(sessionmaker)
        super().__init__(sessionmaker, clients, registry, self.writer, informers=informers)

    def candidates(self) -> Select[str, str | None]:
        return select(BayRow.uuid, BayRow.host).where(
            BayRow.status.in_([s.value for s in WATCHED_STATES]))

    def build(self, bay_uuid: str) -> BayWatch:
        return BayWatch(bay_uuid, self.clients, self.writer, self.sessionmaker, self.never_created_after,
                        informers=self.informers)

    async def after_sweep(self, watches: list[BayWatch]) -> None:
        for watch in watches:
            try:
                await watch.settle_lost()
            except errors.BayportError as exc:
                log.info("bay %s: abandoned creates not checked: %s", watch.bay_uuid, exc.detail)
