"""Pods, services and replication controllers in a bay: the conductor's half of issue #3.

The API validated the manifest and wrote the row (``Creating``); here the object is created
in the bay's Kubernetes API with lightkube, labelled ``bayport.io/uuid=<row uuid>``, and the
cluster's answer recorded on the row, which is returned to the waiting API call. Updates
(RC replicas, a replaced manifest) and deletes take the same path. The same code serves
embedded and real clusters; a request for an embedded bay hosted by another live conductor
is forwarded to that conductor's own topic. After creation the rows are kept current by
``conductor.watch``; ``install`` wires both into a ``ConductorService``.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from lightkube.types import CascadeType, PatchType
from sqlalchemy import delete, update

from bayport import errors
from bayport.conductor.routing import BayBoundOperations
from bayport.conductor.service import ConductorService
from bayport.conductor.watch import CREATING, DELETING, Watches
from bayport.db.base import utcnow
from bayport.db.workloads import WorkloadRow
from bayport.kube.client import cluster_errors, is_not_found
from bayport.kube.kinds import (
    POD,
    RC,
    SERVICE,
    WorkloadKind,
    describe,
    labelled,
    observe,
    prepare,
    to_resource,
    uuid_of,
)
from bayport.objects.context import RequestContext
from bayport.objects.workload import WORKLOAD_CLASSES, Pod, ReplicationController, Service, Workload
from bayport.rpc import is_redelivered

log = logging.getLogger(__name__)


def workload_of(row: WorkloadRow) -> Workload:
    return WORKLOAD_CLASSES[row.kind].of_row(row)


class WorkloadOperations(BayBoundOperations):
    bay_field = "bay_uuid"
    watches: Watches

    # --- rows ------------------------------------------------------------------------------------

    async def _row(self, kind: WorkloadKind, uuid: str) -> WorkloadRow:
        async with self.sessionmaker() as session:
            row = await session.get(WorkloadRow, uuid, populate_existing=True)
        if row is None or row.kind != kind.kind:
            raise errors.NotFound(f"{kind.kind} {uuid} could not be found", field="uuid")
        return row

    async def _set(self, uuid: str, values: dict[str, Any], *, only_status: str | None = None
                   ) -> None:
        async with self.sessionmaker() as session:
            stmt = update(WorkloadRow).where(WorkloadRow.uuid == uuid)
            if only_status is not None:
                stmt = stmt.where(WorkloadRow.status == only_status)
            await session.execute(stmt.values(updated_at=utcnow(), **values)
                                  .execution_options(synchronize_session=False))
            await session.commit()
        self.watches.writer.forget(uuid)

    # --- create ----------------------------------------------------------------------------------

    async def create(self, ctx: RequestContext, kind: WorkloadKind, obj: Workload,
                     body: dict[str, Any] | None) -> Workload:
        """Create ``obj``'s Kubernetes object and return the row as the cluster left it.

        A namespace the bay lacks is a 400; any refusal of the cluster is raised with its
        status, and the API then removes the row, so nothing is left behind.
        """
        host = await self.hosted_elsewhere(obj.bay_uuid)
        if host is not None:
            result: Workload = await self.forward(host, ctx, f"{kind.prefix}_create",
                                                  **{_arg(kind): obj, "body": body})
            return result
        if body is None:
            body = prepare(obj.manifest or "", kind).body
        resource = to_resource(labelled(body, obj.uuid, obj.namespace), kind)
        created = await self._create_object(kind, obj, resource)
        try:
            return await self._record_created(kind, obj.uuid, observe(kind, created))
        except Exception:
            # The API removes the row on any failure; the object must not outlive it.
            try:
                async with cluster_errors(f"{kind.kind} delete"):
                    client = await self.clients.get(obj.bay_uuid)
                    await client.delete(kind.resource, obj.name, namespace=obj.namespace)
            except errors.ClusterAPIError as exc:
                if not is_not_found(exc):
                    raise
            raise

    async def _record_created(self, kind: WorkloadKind, uuid: str, values: dict[str, Any]) -> Workload:
        """The create response's state, unless the watch already recorded a later one."""
        now = utcnow()
        async with self.sessionmaker() as session:
            await session.execute(update(WorkloadRow).where(WorkloadRow.uuid == uuid)
                                  .values(k8s_uid=values["k8s_uid"], updated_at=now)
                                  .execution_options(synchronize_session=False))
            await session.execute(update(WorkloadRow).where(WorkloadRow.uuid == uuid,
                                                            WorkloadRow.status == CREATING)
                                  .values(updated_at=now, **values)
                                  .execution_options(synchronize_session=False))
            row = await session.get(WorkloadRow, uuid, populate_existing=True)
            await session.commit()
        self.watches.writer.forget(uuid)
        if row is None or row.deleted_at is not None:
            # Deleted, or given up as never created (watch.settle_lost) while this request was
            # still in flight: the caller removes the object, which must not outlive its row.
            raise errors.NotFound(f"{kind.kind} {uuid} was deleted while it was being created")
        return workload_of(row)

    async def _create_object(self, kind: WorkloadKind, obj: Workload, resource: Any) -> Any:
        async def attempt(client: Any) -> Any:
            try:
                async with cluster_errors(f"{kind.kind} create"):
                    return await client.create(resource)
            except errors.ClusterAPIError as exc:
                if is_not_found(exc):
                    raise errors.InvalidManifest(
                        f"metadata.namespace: namespace {obj.namespace!r} does not exist in bay "
                        f"{obj.bay_uuid}", field="metadata.namespace") from exc
                if exc.http_status == 409:
                    ours = await self._own_object(client, kind, obj)
                    if ours is not None:
                        return ours
                raise

        return await self.retrying_cluster(obj.bay_uuid, attempt)

    async def _own_object(self, client: Any, kind: WorkloadKind, obj: Workload) -> Any:
        """The object of this name if it carries this row's uuid: made by an earlier delivery
        of this very request (a conductor that died, or whose ack never reached the broker,
        before the row was finished), so a redelivered create finishes the row with it."""
        try:
            async with cluster_errors(f"{kind.kind} read"):
                existing = await client.get(kind.resource, obj.name, namespace=obj.namespace)
        except errors.ClusterAPIError as exc:
            if is_not_found(exc):
                return None
            raise
        if uuid_of(existing) != obj.uuid:
            return None
        log.info("%s %s already exists with this row's uuid: a redelivered create; finishing the row",
                 kind.kind, obj.uuid)
        return existing

    # --- update ----------------------------------------------------------------------------------

    async def update(self, ctx: RequestContext, kind: WorkloadKind, uuid: str, *,
                     body: dict[str, Any] | None = None, manifest: str | None = None,
                     manifest_url: str | None = None, replicas: int | None = None) -> Workload:
        """Scale an RC (``replicas``) or replace an object's manifest (``body``/``manifest``)."""
        row = await self._row(kind, uuid)
        host = await self.hosted_elsewhere(row.bay_uuid)
        if host is not None:
            result: Workload = await self.forward(
                host, ctx, f"{kind.prefix}_update", **{f"{_arg(kind)}_uuid": uuid}, body=body,
                manifest=manifest, manifest_url=manifest_url, replicas=replicas)
            return result
        async with self.locks.hold(uuid):
            row = await self._row(kind, uuid)
            if row.deleted_at is not None or row.status in (DELETING, CREATING):
                raise errors.InvalidState(f"{kind.kind} {uuid} is {row.status}", field="status")
            client = await self.clients.get(row.bay_uuid)
            values: dict[str, Any] = {}
            if replicas is not None:
                if kind is not RC:
                    raise errors.InvalidInput("only replication controllers have replicas",
                                              field="replicas")
                async with cluster_errors("scale"):
                    changed = await client.patch(kind.resource, row.name, {"spec": {"replicas": replicas}},
                                                 namespace=row.namespace, patch_type=PatchType.MERGE)
                values.update(observe(kind, changed))
            if manifest is not None or body is not None:
                if body is None:
                    body = prepare(manifest or "", kind).body
                changed = await self._replace(client, kind, row, body)
                values.update(describe(body, kind))
                values.update(observe(kind, changed))
                values.update(manifest=manifest, manifest_url=manifest_url)
            if values:
                values.pop("name", None)
                values.pop("namespace", None)
                await self._set(uuid, values)
            return workload_of(await self._row(kind, uuid))

    async def _replace(self, client: Any, kind: WorkloadKind, row: WorkloadRow, body: dict[str, Any]
                       ) -> Any:
        async with cluster_errors(f"{kind.kind} read"):
            current = await client.get(kind.resource, row.name, namespace=row.namespace)
        if uuid_of(current) != row.uuid:
            raise errors.Conflict(f"the {kind.kind} named {row.name} in the cluster is not the one "
                                  "Bayport created", field="name")
        new = labelled(body, row.uuid, row.namespace)
        new["metadata"]["resourceVersion"] = current.metadata.resourceVersion
        if kind is SERVICE and current.spec is not None:
            # A Service's ClusterIP is immutable; a manifest without one keeps the allocated one.
            spec = new.setdefault("spec", {})
            spec.setdefault("clusterIP", current.spec.clusterIP)
            if current.spec.clusterIPs:
                spec.setdefault("clusterIPs", current.spec.clusterIPs)
        async with cluster_errors(f"{kind.kind} replace"):
            return await client.replace(to_resource(new, kind), namespace=row.namespace)

    # --- delete ----------------------------------------------------------------------------------

    async def delete(self, ctx: RequestContext, kind: WorkloadKind, uuid: str) -> None:
        """Delete the Kubernetes object (if it is still ours) and then the row.

        A redelivered delete whose first delivery removed the row already is done, not a 404.
        """
        try:
            row = await self._row(kind, uuid)
        except errors.NotFound:
            if is_redelivered():
                log.info("%s %s delete redelivered after the row was removed: done", kind.kind, uuid)
                return
            raise
        if row.deleted_at is None:
            host = await self.hosted_elsewhere(row.bay_uuid)
            if host is not None:
                await self.forward(host, ctx, f"{kind.prefix}_delete", **{f"{_arg(kind)}_uuid": uuid})
                return
        async with self.locks.hold(uuid):
            row = await self._row(kind, uuid)
            if row.deleted_at is None:
                previous = row.status if row.status != DELETING else "Unknown"
                await self._set(uuid, {"status": DELETING, "status_reason": "deleting"})
                try:
                    await self._delete_object(kind, row)
                except Exception:
                    await self._set(uuid, {"status": previous, "status_reason": None},
                                    only_status=DELETING)
                    raise
            async with self.sessionmaker() as session:
                await session.execute(delete(WorkloadRow).where(WorkloadRow.uuid == uuid))
                await session.commit()
            self.watches.writer.forget(uuid)
        log.info("%s deleted %s %s", ctx.request_id, kind.kind, uuid)

    async def _delete_object(self, kind: WorkloadKind, row: WorkloadRow) -> None:
        client = await self.clients.get(row.bay_uuid)
        try:
            async with cluster_errors(f"{kind.kind} read"):
                current = await client.get(kind.resource, row.name, namespace=row.namespace)
            if uuid_of(current) != row.uuid:
                return  # replaced by someone else's object of the same name: not ours to delete
            async with cluster_errors(f"{kind.kind} delete"):
                await client.delete(kind.resource, row.name, namespace=row.namespace,
                                    cascade=CascadeType.BACKGROUND if kind is RC else None)
        except errors.ClusterAPIError as exc:
            if not is_not_found(exc):
                raise


def _arg(kind: WorkloadKind) -> str:
    return {"Pod": "pod", "Service": "service"}.get(kind.kind, "rc")


class WorkloadEndpoint:
    """RPC methods, as Magnum's ``kube.Handler``: pod_*, service_*, rc_*."""

    RPC_API_VERSION = "1.0"

    def __init__(self, ops: WorkloadOperations) -> None:
        self._ops = ops

    async def pod_create(self, ctx: RequestContext, pod: Pod, body: dict[str, Any] | None = None
                         ) -> Workload:
        return await self._ops.create(ctx, POD, pod, body)

    async def pod_update(self, ctx: RequestContext, pod_uuid: str, body: dict[str, Any] | None = None,
                         manifest: str | None = None, manifest_url: str | None = None,
                         replicas: int | None = None) -> Workload:
        return await self._ops.update(ctx, POD, pod_uuid, body=body, manifest=manifest,
                                      manifest_url=manifest_url, replicas=replicas)

    async def pod_delete(self, ctx: RequestContext, pod_uuid: str) -> None:
        await self._ops.delete(ctx, POD, pod_uuid)

    async def service_create(self, ctx: RequestContext, service: Service,
                             body: dict[str, Any] | None = None) -> Workload:
        return await self._ops.create(ctx, SERVICE, service, body)

    async def service_update(self, ctx: RequestContext, service_uuid: str,
                             body: dict[str, Any] | None = None, manifest: str | None = None,
                             manifest_url: str | None = None, replicas: int | None = None) -> Workload:
        return await self._ops.update(ctx, SERVICE, service_uuid, body=body, manifest=manifest,
                                      manifest_url=manifest_url, replicas=replicas)

    async def service_delete(self, ctx: RequestContext, service_uuid: str) -> None:
        await self._ops.delete(ctx, SERVICE, service_uuid)

    async def rc_create(self, ctx: RequestContext, rc: ReplicationController,
                        body: dict[str, Any] | None = None) -> Workload:
        return await self._ops.create(ctx, RC, rc, body)

    async def rc_update(self, ctx: RequestContext, rc_uuid: str, body: dict[str, Any] | None = None,
                        manifest: str | None = None, manifest_url: str | None = None,
                        replicas: int | None = None) -> Workload:
        return await self._ops.update(ctx, RC, rc_uuid, body=body, manifest=manifest,
                                      manifest_url=manifest_url, replicas=replicas)

    async def rc_delete(self, ctx: RequestContext, rc_uuid: str) -> None:
        await self._ops.delete(ctx, RC, rc_uuid)


_installed: weakref.WeakKeyDictionary[ConductorService, WorkloadOperations] = \
    weakref.WeakKeyDictionary()


def operations(service: ConductorService) -> WorkloadOperations:
    """The workload operations ``install`` added to ``service`` (tests and benchmarks look)."""
    return _installed[service]


async def install(service: ConductorService) -> None:
    """Add the workload endpoint and the watches to ``service`` (a CONDUCTOR_PLUGINS entry)."""
    clients = service.clients
    # A create row older than this with no object was lost between the row and the create
    # (the API's call, and its message's TTL, end after rpc_timeout).
    watches = Watches(service.sessionmaker, clients, service.registry,
                      never_created_after=2 * service.settings.rpc_timeout,
                      informers=service.informers)
    ops = WorkloadOperations(service.settings, service.sessionmaker, service.registry,
                             service.transport, watches, clients)
    service.add_endpoint(WorkloadEndpoint(ops))

    async def watch_ready_bay(bay_uuid: str) -> None:
        await watches.ensure(bay_uuid)

    async def stop_watching_bay(bay_uuid: str) -> None:
        await watches.stop(bay_uuid)

    service.bays.on_ready.append(watch_ready_bay)
    service.bays.on_deleting.append(stop_watching_bay)
    async def start_watches() -> None:
        watches.start()

    async def stop_watches() -> None:
        await watches.close()

    service.on_start.append(start_watches)
    service.on_stop.append(stop_watches)
    _installed[service] = ops


__all__ = ["WorkloadEndpoint", "WorkloadOperations", "install", "operations"]
