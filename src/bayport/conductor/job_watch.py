"""Job records follow the cluster: labelled Jobs, their pods and claims, through the informers.

Every Job Bayport renders carries ``bayport.io/job-uuid`` (on its pods too) and every claim
``bayport.io/tenant``. ``BayJobWatch`` follows the three kinds through the bay's shared
informers (``kube.informer``, which resume, relist and time out; the same pod stream serves
workload rows and the pod network),
keeps a ``jobs.state.Observation`` per job (the two streams arrive in no mutual order) and
hands the record it implies to ``RecordWriter``, which merges it into the row
(``jobs.state.merge``: never backwards) in batched transactions. A snapshot (at start, after
every relist) also settles rows whose Job is gone unseen: deleted while running, or never created
because a conductor died between writing the row and creating the Job; each sweep does the
latter for rows a live conductor never got to. ``JobWatches`` decides
which bays this conductor watches: those with tenants that it hosts (embedded bays), or that
rendezvous hashing gives it among live conductors; ``conductor.jobs`` starts it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from lightkube.resources.batch_v1 import Job as BatchJob
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod
from sqlalchemy import Select, Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport import errors
from bayport.conductor.batch_writer import BatchWriter
from bayport.conductor.registry import ConductorRegistry
from bayport.conductor.watch_set import WATCHED_STATES, BayWatchSet
from bayport.db.base import utcnow
from bayport.db.jobs import JobRow, TenantRow, TenantVolumeRow
from bayport.db.models import BayRow
from bayport.jobs import JOB_UUID_LABEL, TENANT_LABEL
from bayport.jobs.state import RECORD_FIELDS, Observation, Values, job_view, merge, pod_view
from bayport.kube.client import ClusterClients, cluster_errors, is_not_found
from bayport.kube.informer import Informers, Snapshot, Subscription
from bayport.objects.tenant import LIVE_JOB_STATES, JobStatus

log = logging.getLogger(__name__)

# A finished job's observation is dropped this long after it finished even if its Job stays
# (no TTL): later events can only fill gaps, which merge() allows without it.
FORGET_FINISHED_AFTER = 60.0
VOLUME_GONE = "Deleted"
NEVER_CREATED = ("the Job was never created in the cluster: the conductor creating it stopped "
                 "before it could")
CHUNK = 500
ROW_MEMORY = 50_000
LIVE = [s.value for s in LIVE_JOB_STATES]


def _gone(message: str, *, created: bool) -> Values:
    return {"status": JobStatus.FAILED.value, "message": message, "exit_code": None, "started_at": None,
            "finished_at": None, "k8s_uid": None, "deleted_in_cluster": created}


RecordBatch = tuple[dict[str, Values], dict[tuple[str, str], Values]]


class RecordWriter(BatchWriter[RecordBatch]):
    """The latest observed record per job and status per claim, written in batches by one task.

    After the API's insert only this writer changes a row's record fields, so it remembers
    what it last read or wrote for a live job and reads a row only the first time.
    """

    what = "observed job records"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessionmaker)
        self._rows: dict[str, Values] = {}
        self._jobs: dict[str, Values] = {}
        self._volumes: dict[tuple[str, str], Values] = {}

    def job(self, uuid: str, record: Values) -> None:
        pending = self._jobs.get(uuid)
        if pending is None:
            self._jobs[uuid] = dict(record)
        else:
            # Not yet written: fold in with the row's own rules, so a later, partial view
            # (a fresh observation after the last one was dropped) cannot erase a richer one.
            pending.update(merge(pending, record))
        self._kick()

    def volume(self, tenant_id: str, name: str, values: Values) -> None:
        self._volumes[(tenant_id, name)] = values
        self._kick()

    def forget(self, uuid: str) -> None:
        """The row is gone (deleted through Bayport): nothing to remember about it."""
        self._rows.pop(uuid, None)

    def _has_pending(self) -> bool:
        return bool(self._jobs or self._volumes)

    def _take(self) -> RecordBatch:
        batch, self._jobs, self._volumes = (self._jobs, self._volumes), {}, {}
        return batch

    def _put_back(self, batch: RecordBatch) -> None:
        for uuid, record in batch[0].items():
            self._jobs.setdefault(uuid, record)
        for key, values in batch[1].items():
            self._volumes.setdefault(key, values)

    def _size(self, batch: RecordBatch) -> int:
        return len(batch[0]) + len(batch[1])

    async def _write_batch(self, batch: RecordBatch) -> None:
        await self._write(*batch)

    async def _write(self, jobs: dict[str, Values], volumes: dict[tuple[str, str], Values]) -> None:
        if not jobs and not volumes:
            return
        now = utcnow()
        cols = [getattr(JobRow, f) for f in ("uuid", "created_at", *RECORD_FIELDS)]
        written: dict[str, Values] = {}
        async with self.sessionmaker() as session:
            unknown = [u for u in jobs if u not in self._rows]
            current = {u: self._rows[u] for u in jobs if u in self._rows}
            for i in range(0, len(unknown), CHUNK):
                rows = await session.execute(select(*cols).where(JobRow.uuid.in_(unknown[i:i + CHUNK])))
                current.update((row.uuid, row._asdict()) for row in rows)
            groups: dict[tuple[str, ...], list[Values]] = {}
            for uuid, row in current.items():
                changes = merge(row, jobs[uuid])
                if changes:
                    groups.setdefault(tuple(sorted(changes)), []).append({"_uuid": uuid, **changes})
                written[uuid] = {**row, **changes}
            for keys, params in groups.items():
                await session.execute(_update_of(keys), [{**p, "updated_at": now} for p in params])
            for (tenant_id, name), values in volumes.items():
                await session.execute(
                    update(TenantVolumeRow).where(TenantVolumeRow.tenant_id == tenant_id,
                                                  TenantVolumeRow.name == name)
                    .values(updated_at=now, **values).execution_options(synchronize_session=False))
            await session.commit()
        for uuid, row in written.items():
            if row["status"] in LIVE or not row["deleted_in_cluster"]:
                self._rows[uuid] = row
            else:
                self._rows.pop(uuid, None)  # finished and gone from the cluster: settled
        if len(self._rows) > ROW_MEMORY:
            self._rows.clear()


class BayJobWatch:
    """The Jobs, pods and claims of one bay that Bayport labelled, through the bay's informers.

    Without ``informers`` (tests) it has its own set over ``clients``, stopped with it.
    """

    KINDS: tuple[tuple[str, Any, str], ...] = (
        ("jobs", BatchJob, JOB_UUID_LABEL), ("pods", Pod, JOB_UUID_LABEL),
        ("persistentvolumeclaims", PersistentVolumeClaim, TENANT_LABEL))

    def __init__(self, bay_uuid: str, clients: ClusterClients, writer: RecordWriter,
                 sessionmaker: async_sessionmaker[AsyncSession], never_created_after: float, *,
                 informers: Informers | None = None) -> None:
        self.bay_uuid = bay_uuid
        self.clients = clients
        self.writer = writer
        self.sessionmaker = sessionmaker
        self.never_created_after = never_created_after
        self.observations: dict[str, Observation] = {}
        self.synced = {plural: asyncio.Event() for plural, _, _ in self.KINDS}
        self._own_informers = informers is None
        self.informers = informers if informers is not None else Informers(clients)
        self._subscriptions: list[Subscription] = []
        self._events = 0

    def start(self) -> None:
        # Pods are shared with workload rows and the pod network (unfiltered, as they ask);
        # Jobs and claims only Bayport labelled, filtered by the server.
        self._subscriptions = [
            self.informers.subscribe(self.bay_uuid, resource, "jobs",
                                     functools.partial(self._on_snapshot, plural, label),
                                     functools.partial(self._on_event, plural),
                                     labels=() if resource is Pod else (label,))
            for plural, resource, label in self.KINDS]

    async def stop(self) -> None:
        for sub in self._subscriptions:
            await self.informers.unsubscribe(sub)
        self._subscriptions.clear()
        if self._own_informers:
            await self.informers.close()

    async def wait_synced(self) -> None:
        for event in self.synced.values():
            await event.wait()

    async def _on_event(self, plural: str, event: str, obj: Any) -> None:
        self._apply(plural, event, obj)

    def _apply(self, plural: str, event: str, obj: Any) -> None:
        if event not in ("ADDED", "MODIFIED", "DELETED"):
            return
        labels = (obj.metadata.labels if obj.metadata is not None else None) or {}
        deleted = event == "DELETED"
        if plural == "persistentvolumeclaims":
            tenant_id = labels.get(TENANT_LABEL)
            if tenant_id and obj.metadata.namespace == tenant_id:
                self.writer.volume(tenant_id, obj.metadata.name, _volume_values(obj, deleted=deleted))
            return
        uuid = labels.get(JOB_UUID_LABEL)
        if not uuid:
            return
        observation = self.observations.get(uuid)
        if observation is None:
            observation = self.observations[uuid] = Observation()
        if plural == "jobs":
            observation.saw_job(job_view(obj, deleted=deleted))
        else:
            observation.saw_pod(obj.metadata.name, pod_view(obj, deleted=deleted))
        record = observation.record()
        if record != observation.sent:
            observation.sent = record
            self.writer.job(uuid, record)
        if observation.settled:
            del self.observations[uuid]
        self._events += 1
        if self._events % 512 == 0:
            self._forget_finished()

    def _forget_finished(self) -> None:
        cutoff = time.monotonic() - FORGET_FINISHED_AFTER
        for uuid in [u for u, o in self.observations.items()
                     if o.finished_since is not None and o.finished_since < cutoff]:
            del self.observations[uuid]

    async def _on_snapshot(self, plural: str, label: str, snapshot: Snapshot) -> None:
        present: set[str] = set()
        for obj in snapshot.objects:
            labels = (obj.metadata.labels if obj.metadata is not None else None) or {}
            if label not in labels:
                continue
            self._apply(plural, "ADDED", obj)
            present.add(str(labels.get(JOB_UUID_LABEL)) if plural != "persistentvolumeclaims"
                        else f"{labels.get(TENANT_LABEL)}/{obj.metadata.name}")
        if plural == "jobs":
            await self._settle_missing_jobs(snapshot.listed_at, present)
        elif plural == "persistentvolumeclaims":
            await self._settle_missing_volumes(snapshot.listed_at, present)
        self.synced[plural].set()

    async def _settle_missing_jobs(self, started: datetime, present: set[str]) -> None:
        """Live rows with no Job: deleted unseen, or never created (past the creation grace)."""
        never_before = started - timedelta(seconds=self.never_created_after)
        async with self.sessionmaker() as session:
            rows = await session.execute(select(JobRow.uuid, JobRow.k8s_uid, JobRow.created_at).where(
                JobRow.bay_uuid == self.bay_uuid, JobRow.status.in_(LIVE), JobRow.created_at < started))
        for uuid, k8s_uid, created_at in rows:
            if uuid in present:
                continue
            if k8s_uid is not None:
                log.info("bay %s: job %s vanished from the cluster", self.bay_uuid, uuid)
                self.writer.job(uuid, _gone("the Job was deleted from the cluster before it finished",
                                            created=True))
            elif created_at < never_before:
                log.warning("bay %s: job %s was never created in the cluster", self.bay_uuid, uuid)
                self.writer.job(uuid, _gone(NEVER_CREATED, created=False))

    async def settle_lost(self) -> None:
        """Rows past the creation grace that no Job ever answered for (the create was lost
        between API and conductor): checked with the cluster, then failed with the reason."""
        if not all(event.is_set() for event in self.synced.values()):
            return
        cutoff = utcnow() - timedelta(seconds=self.never_created_after)
        async with self.sessionmaker() as session:
            rows = (await session.execute(select(JobRow.uuid, JobRow.name, JobRow.namespace).where(
                JobRow.bay_uuid == self.bay_uuid, JobRow.status == JobStatus.PENDING.value,
                JobRow.k8s_uid.is_(None), JobRow.created_at < cutoff))).all()
        lost = [r for r in rows if r.uuid not in self.observations]
        if not lost:
            return
        client = await self.clients.get(self.bay_uuid)
        for uuid, name, namespace in lost:
            try:
                async with cluster_errors("job read"):
                    job = await client.get(BatchJob, name, namespace=namespace)
            except errors.ClusterAPIError as exc:
                if not is_not_found(exc):
                    raise
                log.warning("bay %s: job %s was never created in the cluster", self.bay_uuid, uuid)
                self.writer.job(uuid, _gone(NEVER_CREATED, created=False))
            else:
                self._apply("jobs", "ADDED", job)

    async def _settle_missing_volumes(self, started: datetime, present: set[str]) -> None:
        async with self.sessionmaker() as session:
            rows = await session.execute(
                select(TenantVolumeRow.tenant_id, TenantVolumeRow.name)
                .join(TenantRow, TenantRow.id == TenantVolumeRow.tenant_id)
                .where(TenantRow.bay_uuid == self.bay_uuid, TenantVolumeRow.status != VOLUME_GONE,
                       or_(TenantVolumeRow.updated_at < started,
                           and_(TenantVolumeRow.updated_at.is_(None),
                                TenantVolumeRow.created_at < started))))
        for tenant_id, name in rows:
            if f"{tenant_id}/{name}" not in present:
                self.writer.volume(tenant_id, name, {"status": VOLUME_GONE})


@functools.lru_cache(maxsize=64)
def _update_of(keys: tuple[str, ...]) -> Any:
    """One executemany UPDATE per set of changed fields (a handful of shapes recur)."""
    table: Table = JobRow.__table__  # type: ignore[assignment]
    return (update(table).where(table.c.uuid == bindparam("_uuid"))
            .values({k: bindparam(k) for k in (*keys, "updated_at")}))


def _volume_values(pvc: Any, *, deleted: bool) -> Values:
    if deleted:
        return {"status": VOLUME_GONE}
    phase = (pvc.status.phase if pvc.status is not None else None) or "Pending"
    return {"status": phase, "volume_name": pvc.spec.volumeName if pvc.spec is not None else None}




class JobWatches(BayWatchSet[BayJobWatch]):
    """The bays with tenants whose job records this conductor keeps current."""

    what = "tenant jobs"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clients: ClusterClients,
                 registry: ConductorRegistry, *, never_created_after: float,
                 informers: Informers | None = None) -> None:
        self.never_created_after = never_created_after
        self.writer: RecordWriter = RecordWriter(sessionmaker)
        super().__init__(sessionmaker, clients, registry, self.writer, informers=informers)

    def candidates(self) -> Select[str, str | None]:
        with_tenants = select(TenantRow.bay_uuid).distinct()
        return select(BayRow.uuid, BayRow.host).where(
            BayRow.status.in_([s.value for s in WATCHED_STATES]), BayRow.uuid.in_(with_tenants))

    def build(self, bay_uuid: str) -> BayJobWatch:
        return BayJobWatch(bay_uuid, self.clients, self.writer, self.sessionmaker,
                           self.never_created_after, informers=self.informers)

    async def after_sweep(self, watches: list[BayJobWatch]) -> None:
        for watch in watches:
            try:
                await watch.settle_lost()
            except errors.BayportError as exc:
                log.info("bay %s: lost jobs not checked: %s", watch.bay_uuid, exc.detail)
