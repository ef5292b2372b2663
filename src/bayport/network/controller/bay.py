"""One bay's pod network: follow its pods and namespaces, give every pod a port, free ports
and namespace networks whose pods and namespaces are gone.

Pods and namespaces come from the bay's shared informers (``kube.informer``: the pod stream is
the one workload rows and job records read too); every snapshot (at start, after each relist)
reconciles.

Pod ADDED without a port → ``ipam.create_port`` (device_id = pod uid, idempotent) → a
JSON patch of the pod's ``kuryr.org/neutron-port``, ``kuryr.org/neutron-subnet`` and
``bayport.io/port-id`` annotations (the node side waits for them, so there is no race to
retry). Pod DELETED → ``ipam.release_port_by_device``. Namespace DELETED → its remaining
ports and then its network go. Every snapshot reconciles both ways: ports whose pod is gone
are freed, pods without their port get one, networks of vanished namespaces are freed.
Events of one pod run in order through ``queue.PerKeyQueue``. ``service`` decides which bays
this process handles and starts and stops a ``BayNetwork`` for each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx2
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.types import PatchType
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport import errors
from bayport.db.network import NetworkRow, SubnetRow
from bayport.kube.client import ClusterClients, cluster_errors
from bayport.kube.informer import Informers, Snapshot, Subscription
from bayport.network import ipam
from bayport.network.controller.pods import Annotations, PodView, annotation_patch, as_tuple
from bayport.network.controller.queue import Kind, PerKeyQueue

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 0.1, 5.0
# A handler retries a temporary failure (database busy, cluster unreachable) this often
# before leaving the pod to the next resync; a pod is never dropped for good.
ATTEMPTS = 4
# Namespace handlers share the per-pod queue under keys no pod uid can take.
NAMESPACE_KEY = "namespace/{}"


@dataclass(frozen=True)
class BayInfo:
    uuid: str
    project_id: str
    pod_pool: str = ipam.DEFAULT_POD_POOL


@dataclass(frozen=True, slots=True)
class Applied:
    """What this controller last wrote onto a pod, and the pod's version right after."""

    annotations: Annotations
    version: int | None

    def covers(self, pod: PodView, version: int | None) -> bool:
        """True if ``pod`` shows these annotations, or is a view older than the write."""
        if pod.port_annotations == self.annotations:
            return True
        return version is not None and self.version is not None and version <= self.version


def _version(obj: Any) -> int | None:
    meta = obj.metadata
    raw = meta.resourceVersion if meta is not None else None
    return int(raw) if raw is not None and raw.isdigit() else None


class BayNetwork:
    """Ports of one bay's pods, kept equal to its pods by two watches."""

    def __init__(self, bay: BayInfo, clients: ClusterClients,
                 sessionmaker: async_sessionmaker[AsyncSession], db_slots: asyncio.Semaphore,
                 informers: Informers) -> None:
        self.bay = bay
        # Writes (the annotation patch, a pod re-read) go with this network credential; what
        # the bay holds comes from the process's shared informers.
        self.clients = clients
        self.informers = informers
        self.sessionmaker = sessionmaker
        self.db_slots = db_slots
        self.queue = PerKeyQueue(f"pod-network-{bay.uuid[:8]}")
        self.live: dict[str, PodView] = {}
        self.versions: dict[str, int | None] = {}
        self.applied: dict[str, Applied] = {}
        self.failed: set[str] = set()
        # Pods gone (or finished) whose port release failed past its retries: uid -> namespace.
        self.unreleased: dict[str, str] = {}
        # Finished pods whose port was handed back (released once, not on every later event).
        self.finished_released: set[str] = set()
        self.gone_namespaces: set[str] = set()
        self.subnets: dict[str, ipam.SubnetRecord] = {}
        self.pods_synced = asyncio.Event()
        self.namespaces_synced = asyncio.Event()
        self._subscriptions: list[Subscription] = []

    # --- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        self._subscriptions = [
            self.informers.subscribe(self.bay.uuid, Pod, "pod-network", self._on_pod_snapshot,
                                     self._on_pod_event),
            self.informers.subscribe(self.bay.uuid, Namespace, "pod-network",
                                     self._on_namespace_snapshot, self._on_namespace_event),
        ]

    async def stop(self) -> None:
        for sub in self._subscriptions:
            await self.informers.unsubscribe(sub)
        self._subscriptions.clear()
        await self.queue.close()

    async def settled(self) -> None:
        """Both kinds listed and every queued handler done (tests and benchmarks wait here)."""
        await self.pods_synced.wait()
        await self.namespaces_synced.wait()
        while True:
            await self.queue.idle()
            await asyncio.sleep(0)
            if not len(self.queue) and not any(len(sub) for sub in self._subscriptions):
                return

    def resync(self) -> None:
        """Try again the pods whose handling failed, and the releases that failed (called every
        controller sweep): a port is released in the end even if the database was away for
        longer than a handler's retries, without waiting for a relist."""
        for uid in list(self.failed):
            if uid in self.live:
                self._submit_ensure(uid)
            else:
                self.failed.discard(uid)
        for uid, namespace in list(self.unreleased.items()):
            if uid not in self.live or self.live[uid].finished:
                self.queue.submit(uid, Kind.RELEASE, partial(self._release, uid, namespace))
            else:
                self.unreleased.pop(uid, None)

    # --- following the bay's informers -------------------------------------------------------

    async def _on_pod_snapshot(self, snapshot: Snapshot) -> None:
        await self._relist_pods(snapshot.objects)
        self.pods_synced.set()

    async def _on_namespace_snapshot(self, snapshot: Snapshot) -> None:
        await self._relist_namespaces(snapshot.objects)
        self.namespaces_synced.set()

    async def _on_pod_event(self, event: str, obj: Any) -> None:
        self._on_pod(event, obj)

    async def _on_namespace_event(self, event: str, obj: Any) -> None:
        self._on_namespace(event, obj)

    def _on_pod(self, event: str, obj: Any) -> None:
        pod = PodView.of(obj)
        if pod is None:
            return
        uid = pod.uid
        if event == "DELETED":
            self.live.pop(uid, None)
            self.versions.pop(uid, None)
            self.applied.pop(uid, None)
            self.failed.discard(uid)
            self.finished_released.discard(uid)
            if pod.needs_port:
                self.queue.submit(uid, Kind.RELEASE, partial(self._release, uid, pod.namespace))
            return
        if event not in ("ADDED", "MODIFIED"):
            return
        version = _version(obj)
        self.live[uid] = pod
        self.versions[uid] = version
        if pod.needs_port and pod.finished:
            if uid not in self.finished_released:
                self.finished_released.add(uid)
                self.queue.submit(uid, Kind.RELEASE,
                                  partial(self._release, uid, pod.namespace, free_network=False))
            return
        if not pod.needs_port:
            return
        applied = self.applied.get(uid)
        if applied is not None and applied.covers(pod, version):
            return
        self._submit_ensure(uid)

    def _on_namespace(self, event: str, obj: Any) -> None:
        name = obj.metadata.name if obj.metadata is not None else None
        if not name:
            return
        if event == "DELETED":
            self.gone_namespaces.add(name)
            self.queue.submit(NAMESPACE_KEY.format(name), Kind.OTHER,
                              partial(self._release_namespace, name))
        elif event == "ADDED":
            self.gone_namespaces.discard(name)

    def _submit_ensure(self, uid: str) -> None:
        self.queue.submit(uid, Kind.ENSURE, partial(self._ensure, uid))

    # --- reconciling ----------------------------------------------------------------------------

    async def _relist_pods(self, objects: list[Any]) -> None:
        """Every pod now: free ports whose pod is gone, give a port to pods lacking theirs."""
        seen: dict[str, PodView] = {}
        versions: dict[str, int | None] = {}
        for obj in objects:
            pod = PodView.of(obj)
            if pod is not None:
                seen[pod.uid] = pod
                versions[pod.uid] = _version(obj)
        async with self.sessionmaker() as session:
            ports = await ipam.list_ports(session, self.bay.uuid)
            await self._load_subnets(session)
        self.live, self.versions = seen, versions
        self.applied = {}
        self.failed &= set(seen)
        by_device: dict[str, ipam.PortRecord] = {}
        self.finished_released &= set(seen)
        for port in ports:
            pod_now = seen.get(port.device_id)
            if pod_now is not None and pod_now.finished:
                self.finished_released.add(port.device_id)
                self.queue.submit(port.device_id, Kind.RELEASE,
                                  partial(self._release, port.device_id, port.namespace,
                                          free_network=False))
            elif pod_now is not None:
                by_device[port.device_id] = port
            else:
                log.info("bay %s: freeing port %s of vanished pod %s", self.bay.uuid, port.id,
                         port.device_id)
                self.queue.submit(port.device_id, Kind.RELEASE,
                                  partial(self._release, port.device_id, port.namespace))
        for uid, pod in seen.items():
            if not pod.holds_port:
                continue
            held = by_device.get(uid)
            subnet = self.subnets.get(held.subnet_id) if held is not None else None
            if held is not None and subnet is not None:
                wanted = as_tuple(ipam.pod_annotations(held, subnet))
                if wanted == pod.port_annotations:
                    self.applied[uid] = Applied(wanted, versions[uid])
                    continue
            self._submit_ensure(uid)

    async def _relist_namespaces(self, objects: list[Any]) -> None:
        """Every namespace now: networks of namespaces that no longer exist are freed."""
        names = {obj.metadata.name for obj in objects if obj.metadata is not None and obj.metadata.name}
        async with self.sessionmaker() as session:
            networks = set((await session.execute(select(NetworkRow.namespace).where(
                NetworkRow.bay_uuid == self.bay.uuid))).scalars())
        self.gone_namespaces = networks - names
        for name in self.gone_namespaces:
            log.info("bay %s: freeing the network of vanished namespace %s", self.bay.uuid, name)
            self.queue.submit(NAMESPACE_KEY.format(name), Kind.OTHER,
                              partial(self._release_namespace, name))

    async def _load_subnets(self, session: AsyncSession) -> None:
        rows = await session.execute(select(*SubnetRow.__table__.c).where(
            SubnetRow.bay_uuid == self.bay.uuid))
        self.subnets = {r.id: ipam.SubnetRecord.of(r._mapping) for r in rows}

    # --- handlers -------------------------------------------------------------------------------

    async def _ensure(self, uid: str) -> None:
        """The pod's port exists and its annotations say so."""
        pod = self.live.get(uid)
        if pod is None or not pod.holds_port:
            return
        applied = self.applied.get(uid)
        if applied is not None and applied.covers(pod, self.versions.get(uid)):
            return
        try:
            wanted = await self._retrying(f"port of pod {pod.namespace}/{pod.name}",
                                          partial(self._port_annotations, pod))
            await self._retrying(f"annotations of pod {pod.namespace}/{pod.name}",
                                 partial(self._annotate, uid, pod.namespace, wanted))
            self.failed.discard(uid)
        except Exception as exc:
            if uid in self.live:
                self.failed.add(uid)
            detail = exc.detail if isinstance(exc, errors.BayportError) else repr(exc)
            log.warning("bay %s: pod %s/%s has no port yet: %s", self.bay.uuid, pod.namespace,
                        pod.name, detail)

    async def _retrying(self, what: str, step: Callable[[], Awaitable[Any]]) -> Any:
        delay = RETRY_FIRST
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await step()
            except (errors.TemporaryError, SQLAlchemyError, httpx2.HTTPError) as exc:
                if attempt == ATTEMPTS:
                    raise
                log.info("bay %s: %s: temporary failure (%s); retrying", self.bay.uuid, what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        raise AssertionError("unreachable")

    async def _port_annotations(self, pod: PodView) -> dict[str, str]:
        async with self.db_slots, self.sessionmaker() as session, session.begin():
            port = await ipam.create_port(
                session, bay_uuid=self.bay.uuid, project_id=self.bay.project_id,
                namespace=pod.namespace, name=pod.name, device_id=pod.uid, pod_pool=self.bay.pod_pool)
            subnet = self.subnets.get(port.subnet_id)
            if subnet is None:
                subnet = self.subnets[port.subnet_id] = await ipam.get_subnet(session, port.subnet_id)
        return ipam.pod_annotations(port, subnet)

    async def _annotate(self, uid: str, namespace: str, wanted: dict[str, str]) -> None:
        """Patch the annotations onto exactly this pod (uid-tested) unless it shows them
        already; a pod found gone has its port freed at once (a relist that ran meanwhile
        may have listed the ports before this one existed)."""
        pod = self.live.get(uid)
        if pod is None:
            await self._release(uid, namespace)
            return
        if as_tuple(wanted) == pod.port_annotations:
            self.applied[uid] = Applied(pod.port_annotations, self.versions.get(uid))
            return
        client = await self.clients.get(self.bay.uuid)
        try:
            async with cluster_errors("pod annotation"):
                patched = await client.patch(Pod, pod.name, annotation_patch(pod, wanted),
                                             namespace=pod.namespace, patch_type=PatchType.JSON)
        except errors.ClusterAPIError as exc:
            if exc.http_status not in (400, 404, 409, 422):
                raise
            fresh = await self._current(client, pod) if exc.http_status != 404 else None
            if fresh is None:
                log.info("bay %s: pod %s/%s went away before its annotation", self.bay.uuid,
                         pod.namespace, pod.name)
                self.live.pop(uid, None)
                await self._release(uid, pod.namespace)
                return
            raise errors.TemporaryError(f"pod changed under the patch: {exc.detail}", delay=0) from exc
        self.applied[uid] = Applied(as_tuple(wanted), _version(patched))

    async def _current(self, client: AsyncClient, pod: PodView) -> PodView | None:
        """The pod as it is now, if it is still the same pod (same uid); refreshes ``live``."""
        try:
            async with cluster_errors("pod read"):
                obj = await client.get(Pod, pod.name, namespace=pod.namespace)
        except errors.ClusterAPIError as exc:
            if exc.http_status == 404:
                return None
            raise
        fresh = PodView.of(obj)
        if fresh is None or fresh.uid != pod.uid:
            return None
        if pod.uid in self.live:
            self.live[pod.uid] = fresh
            self.versions[pod.uid] = _version(obj)
        return fresh

    async def _release(self, uid: str, namespace: str, *, free_network: bool = True) -> None:
        """Free the port of pod ``uid`` (idempotent); then the network of a vanished namespace."""
        self.applied.pop(uid, None)

        async def release() -> bool:
            async with self.db_slots, self.sessionmaker() as session, session.begin():
                return await ipam.release_port_by_device(session, self.bay.uuid, uid)

        try:
            await self._retrying(f"release of pod {uid}'s port", release)
        except (errors.TemporaryError, SQLAlchemyError, OSError) as exc:
            self.unreleased[uid] = namespace
            log.warning("bay %s: release of pod %s's port failed (%s: %s); retrying at the next "
                        "sweep", self.bay.uuid, uid, type(exc).__name__, exc)
            return
        self.unreleased.pop(uid, None)
        if free_network and namespace in self.gone_namespaces:
            await self._free_network(namespace)

    async def _release_namespace(self, namespace: str) -> None:
        """A deleted namespace: its ports (each in its pod's order) and then its network."""
        if namespace not in self.gone_namespaces:
            return
        async with self.sessionmaker() as session:
            ports = await ipam.list_ports(session, self.bay.uuid, namespace)
        for port in ports:
            if port.device_id not in self.live:
                await self.queue.run(port.device_id, Kind.RELEASE,
                                     partial(self._release, port.device_id, namespace,
                                             free_network=False))
        await self._free_network(namespace)

    async def _free_network(self, namespace: str) -> None:
        async def free() -> bool:
            async with self.db_slots, self.sessionmaker() as session, session.begin():
                return await ipam.release_namespace_network(session, self.bay.uuid, namespace)

        try:
            freed = await self._retrying(f"network of namespace {namespace}", free)
        except ipam.NetworkInUse:
            return  # a pod's port is still held; its release tries again
        if freed:
            self.subnets.clear()
            log.info("bay %s: freed the network of deleted namespace %s", self.bay.uuid, namespace)
