"""Tenants, their volumes and their jobs in a bay: the conductor's half of the job service.

The API validated the request (and, for a job, wrote its row ``Pending``); here the
namespace, PersistentVolumeClaim or batch/v1 Job is created in the bay's Kubernetes API with
lightkube and the answer returned to the waiting API call, so a POST answers with the record.
A job is rendered from its tenant's template into the tenant's namespace only, after checking
that every claim it mounts exists there. Rows then follow the cluster through
``conductor.job_watch``. A request for an embedded bay hosted by another live conductor is
forwarded to that conductor's own topic; ``install`` wires everything into a ConductorService.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from lightkube.models.core_v1 import PersistentVolumeClaimSpec, VolumeResourceRequirements
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job as BatchJob
from lightkube.resources.core_v1 import Namespace, PersistentVolumeClaim, Pod
from lightkube.types import CascadeType
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError

from bayport import errors
from bayport.conductor.job_watch import JobWatches
from bayport.conductor.routing import BayBoundOperations
from bayport.conductor.service import ConductorService
from bayport.db.jobs import JobRow, TenantRow, TenantVolumeRow
from bayport.jobs import JOB_UUID_LABEL, TENANT_LABEL
from bayport.jobs.template import render_job_manifest
from bayport.kube.client import cluster_errors, is_not_found
from bayport.objects.context import RequestContext
from bayport.objects.tenant import LIVE_JOB_STATES, Job, Tenant, TenantVolume
from bayport.rpc import is_redelivered

log = logging.getLogger(__name__)
LIVE = [s.value for s in LIVE_JOB_STATES]
VOLUME_GONE = "Deleted"
# Built once: a job submission asks this for every job that mounts claims.
KNOWN_CLAIMS = select(TenantVolumeRow.name).where(
    TenantVolumeRow.tenant_id == bindparam("tenant_id"), TenantVolumeRow.status != VOLUME_GONE,
    TenantVolumeRow.name.in_(bindparam("names", expanding=True)))


class JobOperations(BayBoundOperations):
    bay_field = "bay"
    watches: JobWatches

    async def _tenant(self, tenant_id: str) -> TenantRow:
        async with self.sessionmaker() as session:
            row = await session.get(TenantRow, tenant_id, populate_existing=True)
        if row is None:
            raise errors.NotFound(f"tenant {tenant_id} could not be found", field="tenant")
        return row

    async def _job(self, job_uuid: str) -> JobRow:
        async with self.sessionmaker() as session:
            row = await session.get(JobRow, job_uuid, populate_existing=True)
        if row is None:
            raise errors.NotFound(f"job {job_uuid} could not be found", field="uuid")
        return row

    # --- tenants ---------------------------------------------------------------------------------

    async def tenant_create(self, ctx: RequestContext, tenant: Tenant) -> Tenant:
        """Create the tenant's namespace, then its row; a retry finds the namespace already there."""
        host = await self.hosted_elsewhere(tenant.bay_uuid)
        if host is not None:
            forwarded: Tenant = await self.forward(host, ctx, "tenant_create", tenant=tenant)
            return forwarded
        async with self.locks.hold(f"tenant:{tenant.id}"):
            client = await self.clients.get(tenant.bay_uuid)
            created = await self._ensure_namespace(client, tenant)
            row = TenantRow(**{f: getattr(tenant, f) for f in (
                "id", "name", "project_id", "user_id", "bay_uuid", "namespace", "template")})
            try:
                async with self.sessionmaker() as session:
                    session.add(row)
                    await session.commit()
            except IntegrityError as exc:
                earlier = await self._same_tenant(tenant)
                if earlier is not None:
                    return earlier  # a redelivery: the first delivery wrote the row
                if created:
                    await self._delete_namespace(client, tenant.namespace)
                raise errors.Conflict(f"a tenant with id {tenant.id} already exists", field="id") from exc
        await self.watches.ensure(tenant.bay_uuid)
        log.info("%s tenant %s created with namespace %s in bay %s", ctx.request_id, tenant.id,
                 tenant.namespace, tenant.bay_uuid)
        return Tenant.of_row(row)

    async def _same_tenant(self, tenant: Tenant) -> Tenant | None:
        """The stored tenant if this create is a redelivery of the request that stored it."""
        if not is_redelivered():
            return None
        async with self.sessionmaker() as session:
            row = await session.get(TenantRow, tenant.id)
        if row is None or (row.project_id, row.bay_uuid, row.namespace) != (
                tenant.project_id, tenant.bay_uuid, tenant.namespace):
            return None
        return Tenant.of_row(row)

    async def _ensure_namespace(self, client: Any, tenant: Tenant) -> bool:
        """True if this call created it; a namespace of the same name must be this tenant's."""
        namespace = Namespace(metadata=ObjectMeta(name=tenant.namespace,
                                                  labels={TENANT_LABEL: tenant.id}))
        try:
            async with cluster_errors("namespace create"):
                await client.create(namespace)
            return True
        except errors.ClusterAPIError as exc:
            if exc.http_status != 409:
                raise
        async with cluster_errors("namespace read"):
            existing = await client.get(Namespace, tenant.namespace)
        labels = (existing.metadata.labels if existing.metadata is not None else None) or {}
        if labels.get(TENANT_LABEL) != tenant.id:
            raise errors.Conflict(f"namespace {tenant.namespace} already exists in bay {tenant.bay_uuid} "
                                  f"and does not belong to tenant {tenant.id}", field="id")
        if existing.status is not None and existing.status.phase == "Terminating":
            raise errors.Conflict(f"namespace {tenant.namespace} of an earlier tenant {tenant.id} is still "
                                  "being deleted; try again shortly", field="id")
        return False

    async def _delete_namespace(self, client: Any, name: str) -> None:
        try:
            async with cluster_errors("namespace delete"):
                await client.delete(Namespace, name)
        except errors.ClusterAPIError as exc:
            if not is_not_found(exc):
                raise

    async def tenant_delete(self, ctx: RequestContext, tenant_id: str, force: bool = False) -> None:
        """Delete the namespace (and with it every Job, pod and claim in it), then the rows.

        A redelivery whose first delivery removed the rows already is done, not a 404."""
        try:
            row = await self._tenant(tenant_id)
        except errors.NotFound:
            if is_redelivered():
                return
            raise
        host = await self.hosted_elsewhere(row.bay_uuid)
        if host is not None:
            await self.forward(host, ctx, "tenant_delete", tenant_id=tenant_id, force=force)
            return
        async with self.locks.hold(f"tenant:{tenant_id}"):
            running = await self._live_jobs(tenant_id)
            if running and not force:
                names = ", ".join(r.name for r in running[:5]) + (" …" if len(running) > 5 else "")
                raise errors.InvalidState(f"tenant {tenant_id} has {len(running)} job(s) still running "
                                          f"({names}); delete them or pass force=true", field="force")
            client = await self.clients.get(row.bay_uuid)
            await self._delete_namespace(client, row.namespace)
            async with self.sessionmaker() as session:
                await session.execute(delete(TenantRow).where(TenantRow.id == tenant_id))
                await session.commit()
        log.info("%s tenant %s deleted (namespace %s)", ctx.request_id, tenant_id, row.namespace)

    async def _live_jobs(self, tenant_id: str) -> list[JobRow]:
        async with self.sessionmaker() as session:
            rows = await session.execute(select(JobRow).where(
                JobRow.tenant_id == tenant_id, JobRow.status.in_(LIVE),
                JobRow.deleted_in_cluster.is_(False)).order_by(JobRow.created_at))
        return list(rows.scalars())

    # --- volumes ---------------------------------------------------------------------------------

    async def volume_create(self, ctx: RequestContext, volume: TenantVolume) -> TenantVolume:
        tenant = await self._tenant(volume.tenant_id)
        host = await self.hosted_elsewhere(tenant.bay_uuid)
        if host is not None:
            forwarded: TenantVolume = await self.forward(host, ctx, "volume_create", volume=volume)
            return forwarded
        claim = PersistentVolumeClaim(
            metadata=ObjectMeta(name=volume.name, namespace=tenant.namespace,
                                labels={TENANT_LABEL: tenant.id}),
            spec=PersistentVolumeClaimSpec(accessModes=["ReadWriteOnce"],
                                           resources=VolumeResourceRequirements(
                                               requests={"storage": volume.size})))
        client = await self.clients.get(tenant.bay_uuid)
        try:
            async with cluster_errors("persistentvolumeclaim create"):
                created = await client.create(claim)
        except errors.ClusterAPIError as exc:
            if exc.http_status != 409:
                raise
            created = await self._redelivered_claim(client, tenant, volume.name)
            if created is None:
                raise errors.Conflict(f"a claim named {volume.name} already exists in tenant "
                                      f"{tenant.id}'s namespace", field="name") from exc
        row = TenantVolumeRow(tenant_id=tenant.id, name=volume.name, size=volume.size,
                              status=(created.status.phase if created.status else None) or "Pending",
                              volume_name=created.spec.volumeName if created.spec else None)
        async with self.sessionmaker() as session:
            await session.merge(row)
            await session.commit()
        return TenantVolume.of_row(row)

    async def _redelivered_claim(self, client: Any, tenant: TenantRow, name: str) -> Any:
        """On a redelivered create, the tenant's claim that its first delivery made."""
        if not is_redelivered():
            return None
        async with cluster_errors("persistentvolumeclaim read"):
            existing = await client.get(PersistentVolumeClaim, name, namespace=tenant.namespace)
        labels = (existing.metadata.labels if existing.metadata is not None else None) or {}
        return existing if labels.get(TENANT_LABEL) == tenant.id else None

    async def volume_delete(self, ctx: RequestContext, tenant_id: str, name: str) -> None:
        """Delete a claim no running job mounts (409 naming the jobs otherwise), then its row."""
        tenant = await self._tenant(tenant_id)
        host = await self.hosted_elsewhere(tenant.bay_uuid)
        if host is not None:
            await self.forward(host, ctx, "volume_delete", tenant_id=tenant_id, name=name)
            return
        users = [j.name for j in await self._live_jobs(tenant_id)
                 if any(v.get("pvc") == name for v in j.vols)]
        if users:
            raise errors.InvalidState(f"volume {name} is mounted by running job(s) {', '.join(users)}",
                                      field="name")
        client = await self.clients.get(tenant.bay_uuid)
        try:
            async with cluster_errors("persistentvolumeclaim delete"):
                await client.delete(PersistentVolumeClaim, name, namespace=tenant.namespace)
        except errors.ClusterAPIError as exc:
            if not is_not_found(exc):
                raise
        async with self.sessionmaker() as session:
            await session.execute(delete(TenantVolumeRow).where(TenantVolumeRow.tenant_id == tenant_id,
                                                                TenantVolumeRow.name == name))
            await session.commit()

    # --- jobs ------------------------------------------------------------------------------------

    async def job_create(self, ctx: RequestContext, job: Job, template: dict[str, Any] | None = None
                         ) -> Job:
        """Render the tenant's template for ``job`` and create it in the tenant's namespace.

        The row exists already (the API wrote it); the Job carries the row's uuid as a label,
        so if this process dies after the create the watch still finds and records it.
        ``template`` is the tenant's as the API read it with the tenant (saves a read here);
        the namespace is always the job's, which is the tenant's.
        """
        host = await self.hosted_elsewhere(job.bay_uuid)
        if host is not None:
            forwarded: Job = await self.forward(host, ctx, "job_create", job=job, template=template)
            return forwarded
        claims = sorted({v["pvc"] for v in job.vols})
        known: set[str] = set()
        if template is None or claims:
            async with self.sessionmaker() as session:
                if template is None:
                    tenant = await session.get(TenantRow, job.tenant_id)
                    if tenant is None:
                        raise errors.InvalidInput(f"tenant: tenant {job.tenant_id} could not be found",
                                                  field="tenant")
                    template = tenant.template
                if claims:
                    known = set((await session.execute(
                        KNOWN_CLAIMS, {"tenant_id": job.tenant_id, "names": claims})).scalars())
        client = await self.clients.get(job.bay_uuid)
        await self._check_claims(client, job, [c for c in claims if c not in known])
        manifest = render_job_manifest(template, name=job.name, namespace=job.namespace,
                                       tenant_id=job.tenant_id, job_uuid=job.uuid, cmd=job.cmd,
                                       vols=job.vols)
        created = await self._create_job_object(job, _batch_job(manifest))
        if not self.watches.owns(job.bay_uuid):
            await self.watches.ensure(job.bay_uuid)
        result = job.model_copy()
        result.k8s_uid = created.metadata.uid if created.metadata is not None else None
        return result

    async def _create_job_object(self, job: Job, resource: BatchJob) -> BatchJob:
        async def attempt(client: Any) -> BatchJob:
            try:
                async with cluster_errors("job create"):
                    created: BatchJob = await client.create(resource)
                    return created
            except errors.ClusterAPIError as exc:
                if is_not_found(exc):
                    raise errors.InvalidState(f"tenant {job.tenant_id}'s namespace {job.namespace} is "
                                              f"missing from bay {job.bay_uuid}", field="tenant") from exc
                if exc.http_status == 409:
                    ours = await self._own_job(client, job)
                    if ours is not None:
                        return ours
                raise

        return await self.retrying_cluster(job.bay_uuid, attempt)

    async def _own_job(self, client: Any, job: Job) -> BatchJob | None:
        """The Job of this name if it carries this record's uuid: an earlier delivery of this
        request made it before its ack reached the broker, so the redelivery answers with it."""
        try:
            async with cluster_errors("job read"):
                existing = await client.get(BatchJob, job.name, namespace=job.namespace)
        except errors.ClusterAPIError as exc:
            if is_not_found(exc):
                return None
            raise
        labels = (existing.metadata.labels if existing.metadata is not None else None) or {}
        if labels.get(JOB_UUID_LABEL) != job.uuid:
            return None
        log.info("job %s already exists: a redelivered create; answering with it", job.uuid)
        found: BatchJob = existing
        return found

    async def _check_claims(self, client: Any, job: Job, ask: list[str]) -> None:
        """Claims Bayport has no row for must exist in the tenant's namespace all the same."""
        if not ask:
            return

        async def exists(name: str) -> bool:
            try:
                async with cluster_errors("persistentvolumeclaim read"):
                    await client.get(PersistentVolumeClaim, name, namespace=job.namespace)
                return True
            except errors.ClusterAPIError as exc:
                if is_not_found(exc):
                    return False
                raise

        found = dict(zip(ask, await asyncio.gather(*(exists(n) for n in ask)), strict=True))
        for i, vol in enumerate(job.vols):
            if not found.get(vol["pvc"], True):
                raise errors.InvalidInput(
                    f"vols[{i}].pvc: no PersistentVolumeClaim named {vol['pvc']!r} in tenant "
                    f"{job.tenant_id}'s namespace (create it with POST /v1/tenants/{job.tenant_id}/volumes)",
                    field=f"vols[{i}].pvc")

    async def job_delete(self, ctx: RequestContext, job_uuid: str) -> None:
        """Delete the Job and (in the background, by owner reference) its pods, then the record.

        A redelivery whose first delivery removed the record already is done, not a 404."""
        try:
            row = await self._job(job_uuid)
        except errors.NotFound:
            if is_redelivered():
                return
            raise
        host = await self.hosted_elsewhere(row.bay_uuid)
        if host is not None:
            await self.forward(host, ctx, "job_delete", job_uuid=job_uuid)
            return
        if not row.deleted_in_cluster:
            client = await self.clients.get(row.bay_uuid)
            try:
                async with cluster_errors("job delete"):
                    await client.delete(BatchJob, row.name, namespace=row.namespace,
                                        cascade=CascadeType.BACKGROUND)
            except errors.ClusterAPIError as exc:
                if not is_not_found(exc):
                    raise
        async with self.sessionmaker() as session:
            await session.execute(delete(JobRow).where(JobRow.uuid == job_uuid))
            await session.commit()
        self.watches.writer.forget(job_uuid)
        log.info("%s job %s (%s) deleted", ctx.request_id, job_uuid, row.name)

    async def job_logs(self, ctx: RequestContext, job_uuid: str, tail_lines: int | None = None) -> str:
        """The log of the job's latest pod, read through the cluster's pods/{name}/log."""
        row = await self._job(job_uuid)
        host = await self.hosted_elsewhere(row.bay_uuid)
        if host is not None:
            text: str = await self.forward(host, ctx, "job_logs", job_uuid=job_uuid, tail_lines=tail_lines)
            return text
        client = await self.clients.get(row.bay_uuid)
        async with cluster_errors("pod list"):
            pods = [p async for p in client.list(Pod, namespace=row.namespace,
                                                 labels={JOB_UUID_LABEL: job_uuid})]
        if not pods:
            if row.status in LIVE and not row.deleted_in_cluster:
                raise errors.InvalidState(f"job {job_uuid} has no pod yet; it is {row.status}"
                                          + (f" ({row.message})" if row.message else ""), field="status")
            raise errors.NotFound(
                f"job {job_uuid} has no pod in the cluster any more, and logs live only as long as the "
                "pod: finished jobs are removed ttlSecondsAfterFinished after they finish (0 in the "
                "default template; raise it in the tenant's template to keep logs)", field="logs")
        pod = max(pods, key=lambda p: (str(p.metadata.creationTimestamp) if p.metadata else "",
                                       p.metadata.name if p.metadata else ""))
        name = pod.metadata.name if pod.metadata is not None else None
        containers = pod.spec.containers if pod.spec is not None else []
        container = next((c.name for c in containers if c.args and any(row.cmd in a for a in c.args)),
                         containers[0].name if containers else None)
        async with cluster_errors("pod log"):
            lines = [line async for line in client.log(str(name), namespace=row.namespace,
                                                       container=container, tail_lines=tail_lines)]
        return "".join(lines)


def _batch_job(manifest: dict[str, Any]) -> BatchJob:
    job: BatchJob = BatchJob.from_dict(manifest)  # type: ignore[assignment]
    return job


class JobEndpoint:
    """RPC methods of the job service: tenant_*, volume_*, job_*."""

    RPC_API_VERSION = "1.0"

    def __init__(self, ops: JobOperations) -> None:
        self._ops = ops

    async def tenant_create(self, ctx: RequestContext, tenant: Tenant) -> Tenant:
        return await self._ops.tenant_create(ctx, tenant)

    async def tenant_delete(self, ctx: RequestContext, tenant_id: str, force: bool = False) -> None:
        await self._ops.tenant_delete(ctx, tenant_id, force)

    async def volume_create(self, ctx: RequestContext, volume: TenantVolume) -> TenantVolume:
        return await self._ops.volume_create(ctx, volume)

    async def volume_delete(self, ctx: RequestContext, tenant_id: str, name: str) -> None:
        await self._ops.volume_delete(ctx, tenant_id, name)

    async def job_create(self, ctx: RequestContext, job: Job, template: dict[str, Any] | None = None
                         ) -> Job:
        return await self._ops.job_create(ctx, job, template)

    async def job_delete(self, ctx: RequestContext, job_uuid: str) -> None:
        await self._ops.job_delete(ctx, job_uuid)

    async def job_logs(self, ctx: RequestContext, job_uuid: str, tail_lines: int | None = None) -> str:
        return await self._ops.job_logs(ctx, job_uuid, tail_lines)


_installed: weakref.WeakKeyDictionary[ConductorService, JobOperations] = weakref.WeakKeyDictionary()


def operations(service: ConductorService) -> JobOperations:
    """The job operations ``install`` added to ``service`` (tests and benchmarks look)."""
    return _installed[service]


async def install(service: ConductorService) -> None:
    """Add the job endpoint and the job watches to ``service`` (a CONDUCTOR_PLUGINS entry)."""
    clients = service.clients
    # A job row older than this with no Job in the cluster was lost between row and create.
    watches = JobWatches(service.sessionmaker, clients, service.registry,
                         never_created_after=2 * service.settings.rpc_timeout,
                         informers=service.informers)
    ops = JobOperations(service.settings, service.sessionmaker, service.registry, service.transport,
                        watches, clients)
    service.add_endpoint(JobEndpoint(ops))

    # A bay is watched once it has a tenant (tenant_create, or the sweep after a restart).
    async def stop_watching_bay(bay_uuid: str) -> None:
        await watches.stop(bay_uuid)
        await clients.forget(bay_uuid)

    service.bays.on_deleting.append(stop_watching_bay)

    async def start_watches() -> None:
        watches.start()

    async def stop_watches() -> None:
        await watches.close()

    service.on_start.append(start_watches)
    service.on_stop.append(stop_watches)
    _installed[service] = ops
