"""Keeping workload rows current: one watch per bay and kind, and a coalescing row writer.

Status is never polled. For every bay it owns, a conductor watches pods, services and
replication controllers carrying the ``bayport.io/uuid`` label (``BayWatch``), turns each
event into row values (``kube.kinds.observe``) and hands them to ``RowWriter``, which keeps
only the latest values per row and writes whatever accumulated in one transaction, so a
burst of events costs one commit and a quiet cluster costs none. A watch resumes from its
last resourceVersion after a disconnect and relists on 410 Gone; a relist marks rows whose
object vanished meanwhile as deleted. ``Watches`` decides which bays are this conductor's
(the hosting conductor for embedded bays, rendezvous hashing over live conductors for the
rest) and starts and stops watches; ``conductor.workloads`` wires it to the bay hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import datetime, timedelta
from typing import Any, cast

import httpx2
from lightkube import operators
from lightkube.core.exceptions import ApiError
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
RETRY_FIRST, RETRY_MAX = 0.1, 5.0


RowBatch = tuple[dict[str, dict[str, Any]], dict[str, str]]


class RowWriter(BatchWriter[RowBatch]):
    """Latest observed values per row, written in batches by one task."""

    what = "observed workload states"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessionmaker)
        self._pending: dict[str, dict[str, Any]] = {}
        self._gone: dict[str, str] = {}
        self._written: dict[str, dict[str, Any]] = {}

    def observed(self, uuid: str, values: dict[str, Any]) -> None:
        """Record what the cluster says about row ``uuid``; nothing new → no write."""
        last = self._written.get(uuid)
        if uuid not in self._pending and last is not None and all(
                last.get(k) == v for k, v in values.items()):
            return
        self._pending.setdefault(uuid, {}).update(values)
        self._kick()

    def gone(self, uuid: str, reason: str = DELETED_OUTSIDE) -> None:
        """The object of row ``uuid`` no longer exists in the cluster."""
        self._pending.pop(uuid, None)
        self._written.pop(uuid, None)
        self._gone[uuid] = reason
        self._kick()

    def forget(self, uuid: str) -> None:
        """Drop what is remembered about ``uuid`` (its row was written or deleted elsewhere)."""
        self._written.pop(uuid, None)

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
    """Watches of one bay's labelled pods, services and RCs, one task per kind."""

    def __init__(self, bay_uuid: str, clients: ClusterClients, writer: RowWriter,
                 sessionmaker: async_sessionmaker[AsyncSession],
                 never_created_after: float = STALE_CREATING.total_seconds()) -> None:
        self.bay_uuid = bay_uuid
        self.never_created_after = never_created_after
        self.clients = clients
        self.writer = writer
        self.sessionmaker = sessionmaker
        self.synced = {kind.kind: asyncio.Event() for kind in KINDS.values()}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(kind), name=f"watch-{self.bay_uuid}-{kind.plural}")
                       for kind in KINDS.values()]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def wait_synced(self) -> None:
        for event in self.synced.values():
            await event.wait()

    async def _run(self, kind: WorkloadKind) -> None:
        version: str | None = None
        delay = RETRY_FIRST
        refresh = False
        client: Any = None
        while True:
            try:
                previous, client = client, await self.clients.get(self.bay_uuid, refresh=refresh)
                refresh = False
                if previous is not None and client is not previous:
                    # New credentials: a re-hosted cluster whose resourceVersions mean nothing
                    # to the old stream's. Start over from a list.
                    version = None
                if version is None:
                    version = await self._relist(client, kind)
                    self.synced[kind.kind].set()
                stream = client.watch(kind.resource, namespace="*", resource_version=version,
                                      labels={UUID_LABEL: operators.exists()})
                async for event, obj in stream:
                    delay = RETRY_FIRST
                    version = _version_of(obj) or version
                    self._apply(kind, event, obj)
            except ApiError as exc:
                if exc.status.code == 410:
                    log.info("bay %s: %s watch expired (410); relisting", self.bay_uuid, kind.plural)
                    version = None
                    continue
                log.warning("bay %s: %s watch refused: %s", self.bay_uuid, kind.plural, exc)
            except (httpx2.HTTPError, errors.BayportError) as exc:
                log.info("bay %s: %s watch interrupted (%s); resuming in %.1fs", self.bay_uuid,
                         kind.plural, exc or type(exc).__name__, delay)
                refresh = True
            except Exception:
                log.exception("bay %s: %s watch failed", self.bay_uuid, kind.plural)
                refresh = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _apply(self, kind: WorkloadKind, event: str, obj: Any) -> None:
        uuid = uuid_of(obj)
        if uuid is None:
            return
        if event == "DELETED":
            self.writer.gone(uuid)
        elif event in ("ADDED", "MODIFIED"):
            self.writer.observed(uuid, observe(kind, obj))

    async def _relist(self, client: Any, kind: WorkloadKind) -> str | None:
        """Observe every labelled object now; rows whose object is gone are marked deleted."""
        started = utcnow()
        listing = client.list(kind.resource, namespace="*", labels={UUID_LABEL: operators.exists()})
        present: set[str] = set()
        async for obj in listing:
            uuid = uuid_of(obj)
            if uuid is not None:
                present.add(uuid)
                self.writer.observed(uuid, observe(kind, obj))
        missing = await self._rows_missing_since(kind, started, present)
        for uuid, status in missing:
            log.info("bay %s: %s %s is not in the cluster", self.bay_uuid, kind.kind, uuid)
            self.writer.gone(uuid, NEVER_CREATED if status == CREATING else DELETED_OUTSIDE)
        version: str | None = listing.resourceVersion
        return version

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
                self.writer.observed(uuid, observe(kind, obj))
                continue
            log.warning("bay %s: %s %s (%s/%s) was never created in the cluster; failing its row",
                        self.bay_uuid, kind.kind, uuid, namespace, name)
            self.writer.gone(uuid, NEVER_CREATED_AFTER)


def _version_of(obj: Any) -> str | None:
    meta = obj.metadata
    return meta.resourceVersion if meta is not None else None




class Watches(BayWatchSet[BayWatch]):
    """The bays whose workload rows this conductor keeps current."""

    what = "workloads"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clients: ClusterClients,
                 registry: ConductorRegistry, *,
                 never_created_after: float = STALE_CREATING.total_seconds()) -> None:
        self.never_created_after = never_created_after
        self.writer: RowWriter = RowWriter(sessionmaker)
        super().__init__(sessionmaker, clients, registry, self.writer)

    def candidates(self) -> Select[str, str | None]:
        return select(BayRow.uuid, BayRow.host).where(
            BayRow.status.in_([s.value for s in WATCHED_STATES]))

    def build(self, bay_uuid: str) -> BayWatch:
        return BayWatch(bay_uuid, self.clients, self.writer, self.sessionmaker, self.never_created_after)

    async def after_sweep(self, watches: list[BayWatch]) -> None:
        for watch in watches:
            try:
                await watch.settle_lost()
            except errors.BayportError as exc:
                log.info("bay %s: abandoned creates not checked: %s", watch.bay_uuid, exc.detail)
