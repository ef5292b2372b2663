"""Pod network (issue 4): pod created → annotated → Running, and a churn with controller kills.

In one process, as ``bayport serve`` runs it: SQLite, an embedded 3-node bay whose nodes
wait for the port annotation, and the pod-network controller. Measured from a lightkube
watch on the bay: create sent → ``kuryr.org/neutron-port`` seen → pod Running (pods made
one at a time, then 16 at once). Then the churn: CHURN_PODS pods created and deleted
across 20 namespaces (every fifth deleted at once, before it can run), the controller
killed and restarted three times meanwhile; every podIP change is checked against the
addresses live pods hold (duplicates) and whatever ports remain at the end are leaks.
Targets: create → Running p99 ≤ 100 ms; 0 duplicates, 0 leaked ports. Anchors: Kuryr
about 50 s for the first pod and 3 s per pod with pre-created port pools; Whereabouts
over 4 minutes for 128 replicas x 16 networks. ``churn`` is also the test suite's churn.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import Container, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Pod
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport.cli import runner
from bayport.conductor.bays import bay_of, baymodel_of
from bayport.config import Settings
from bayport.db.base import make_engine, make_sessionmaker
from bayport.db.models import BayCredential, BayModelRow, BayRow
from bayport.db.network import IPAllocationRow, PortRow
from bayport.drivers.local import LocalDriver
from bayport.kube.client import ClusterClients
from bayport.network.annotation_keys import NEUTRON_PORT
from bayport.network.controller import EveryBay, PodNetworkController
from bench.stats import percentile, summary

CHURN_PODS = int(os.environ.get("BENCH_CHURN_PODS", "10000"))
NAMESPACES = 20
RESTARTS = 3
LATENCY_PODS = int(os.environ.get("BENCH_POD_NETWORK_PODS", "200"))
KURYR_FIRST_POD_S, KURYR_PER_POD_S = 50.0, 3.0
WHEREABOUTS_S = 240.0


def pod_manifest(name: str, namespace: str) -> Pod:
    return Pod(metadata=ObjectMeta(name=name, namespace=namespace),
               spec=PodSpec(containers=[Container(name="c", image="busybox:1.36")]))


@dataclass
class AddressMonitor:
    """Follows every pod of a bay: when each was first annotated and first Running, and any
    podIP that a live pod already holds (a duplicate)."""

    k8s: AsyncClient
    owner: dict[str, str] = field(default_factory=dict)
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)
    annotated: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    _signals: dict[str, asyncio.Event] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> AddressMonitor:
        self._task = asyncio.create_task(self._follow())
        await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        listing = self.k8s.list(Pod, namespace="*")
        async for obj in listing:
            self._observe("ADDED", obj)
        self._ready.set()
        async for event, obj in self.k8s.watch(Pod, namespace="*",
                                               resource_version=listing.resourceVersion):
            self._observe(event, obj)

    def _observe(self, event: str, pod: Pod) -> None:
        now = time.monotonic()
        meta, status = pod.metadata, pod.status
        if meta is None or meta.uid is None:
            return
        uid = meta.uid
        ip = status.podIP if status is not None else None
        if event == "DELETED":
            if ip and self.owner.get(ip) == uid:
                del self.owner[ip]
            self.signal(uid).set()
            return
        if meta.annotations and NEUTRON_PORT in meta.annotations:
            self.annotated.setdefault(uid, now)
        if ip:
            holder = self.owner.setdefault(ip, uid)
            if holder != uid:
                self.duplicates.append((ip, holder, uid))
        if status is not None and status.phase == "Running":
            self.running.setdefault(uid, now)
            self.signal(uid).set()

    def signal(self, uid: str) -> asyncio.Event:
        return self._signals.setdefault(uid, asyncio.Event())


async def create_and_wait(k8s: AsyncClient, monitor: AddressMonitor, name: str, namespace: str,
                          timeout: float = 60.0) -> tuple[str, float]:
    """Create a pod and wait until it runs (or is gone); (uid, time the create was sent)."""
    started = time.monotonic()
    created = await k8s.create(pod_manifest(name, namespace))
    assert created.metadata is not None and created.metadata.uid is not None
    uid = created.metadata.uid
    await asyncio.wait_for(monitor.signal(uid).wait(), timeout)
    return uid, started


@dataclass
class ChurnResult:
    created: int = 0
    deleted_at_once: int = 0
    restarts: int = 0
    seconds: float = 0.0
    duplicates: int = 0
    leaked_ports: int = 0
    leaked_addresses: int = 0


async def churn(k8s: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], bay_uuid: str, *,
                pods: int, namespaces: list[str], restarts: int, concurrency: int,
                restart: Callable[[], Coroutine[Any, Any, None]], settle: Callable[[], Awaitable[None]],
                down_seconds: float = 0.3) -> ChurnResult:
    """Create and delete ``pods`` pods round-robin over ``namespaces`` (every fifth deleted at
    once), ``restart``-ing the controller evenly ``restarts`` times; then ``settle`` and count
    duplicates and what IPAM still holds (everything it holds is a leak: no pod is left)."""
    result = ChurnResult()
    counter = iter(range(pods))
    marks = {pods * (k + 1) // (restarts + 1) for k in range(restarts)}
    started = time.monotonic()
    restarting: list[asyncio.Task[None]] = []

    async with AddressMonitor(k8s) as monitor:
        async def worker() -> None:
            for index in counter:
                if index in marks:
                    restarting.append(asyncio.create_task(restart()))
                    result.restarts += 1
                name, namespace = f"churn-{index}", namespaces[index % len(namespaces)]
                if index % 5 == 4:
                    await k8s.create(pod_manifest(name, namespace))
                    result.deleted_at_once += 1
                else:
                    await create_and_wait(k8s, monitor, name, namespace, timeout=60.0 + down_seconds)
                result.created += 1
                with contextlib.suppress(ApiError):
                    await k8s.delete(Pod, name, namespace=namespace)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await asyncio.gather(*restarting)
        await settle()
        result.seconds = time.monotonic() - started
        result.duplicates = len(monitor.duplicates)
    async with sessionmaker() as session:
        result.leaked_ports = int((await session.execute(
            select(func.count()).select_from(PortRow).where(PortRow.bay_uuid == bay_uuid))).scalar_one())
        result.leaked_addresses = int((await session.execute(
            select(func.count()).select_from(IPAllocationRow))).scalar_one())
    return result


# --- the benchmark: an embedded bay and a controller in this process ----------------------------

async def embedded_bay(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession],
                       driver: LocalDriver, node_count: int = 3) -> str:
    """A ready bay on the bayport network driver, as the conductor would leave it."""
    async with sessionmaker() as session:
        model = BayModelRow(name="k8s", project_id="bench", user_id="bench", driver="local",
                            network_driver="bayport")
        session.add(model)
        await session.flush()
        row = BayRow(name="bench", project_id="bench", user_id="bench", baymodel_id=model.uuid,
                     node_count=node_count, master_count=1, status="CREATE_COMPLETE")
        session.add(row)
        await session.flush()
        result = await driver.create(bay_of(row), baymodel_of(model))
        creds = result.credentials
        session.add(BayCredential(bay_uuid=row.uuid, server=creds.server, token=creds.token,
                                  reader_token=creds.reader_token, network_token=creds.network_token,
                                  ca_data=creds.ca_data))
        await session.commit()
        return row.uuid


async def measure_latency(k8s: AsyncClient, pods: int, concurrency: int, label: str, prefix: str
                          ) -> None:
    async with AddressMonitor(k8s) as monitor:
        sent: dict[str, float] = {}
        names = iter(range(pods))

        async def worker() -> None:
            for i in names:
                uid, started = await create_and_wait(k8s, monitor, f"{prefix}-{i}", "default")
                sent[uid] = started

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        annotated = [monitor.annotated[u] - t for u, t in sent.items() if u in monitor.annotated]
        running = [monitor.running[u] - t for u, t in sent.items() if u in monitor.running]
    summary(f"{label}: create → annotated", annotated)
    summary(f"{label}: create → Running", running)
    p99 = percentile(running, 99)
    print(f"  target p99 ≤ 100 ms: {'met' if p99 <= 0.1 else 'missed'}; first pod "
          f"{KURYR_FIRST_POD_S / max(running[0], 1e-9):,.0f}x faster than Kuryr's ~50 s, "
          f"{KURYR_PER_POD_S / max(statistics.median(running), 1e-9):,.0f}x its ~3 s per pod")
    for i in range(pods):
        with contextlib.suppress(ApiError):
            await k8s.delete(Pod, f"{prefix}-{i}", namespace="default")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-pod-network-") as tmp:
        settings = Settings(data_dir=Path(tmp), heartbeat_interval=0.5, port_wait_seconds=120.0,
                            default_runtime="simulated")
        await runner.upgrade_db(settings)
        engine = make_engine(settings.effective_database_url)
        sessionmaker = make_sessionmaker(engine)
        driver = LocalDriver(settings)
        driver.pod_network_enabled = True
        controller = PodNetworkController(sessionmaker, EveryBay(), interval=0.5)
        clients = ClusterClients(sessionmaker)
        try:
            bay_uuid = await embedded_bay(settings, sessionmaker, driver)
            await controller.start()
            await controller.settled(bay_uuid)
            k8s = await clients.get(bay_uuid)
            await measure_latency(k8s, LATENCY_PODS, 1, "one at a time", "serial")
            await measure_latency(k8s, LATENCY_PODS, 16, "16 at once", "burst")

            namespaces = [f"ns-{i:02d}" for i in range(NAMESPACES)]
            for name in namespaces:
                await k8s.create(Namespace(metadata=ObjectMeta(name=name)))

            async def restart() -> None:
                await controller.stop()
                await asyncio.sleep(0.3)
                await controller.start()

            async def settle() -> None:
                await controller.settled(bay_uuid)

            result = await churn(k8s, sessionmaker, bay_uuid, pods=CHURN_PODS, namespaces=namespaces,
                                 restarts=RESTARTS, concurrency=32, restart=restart, settle=settle)
            per_s = 2 * result.created / result.seconds
            print(f"churn: {result.created} pods created and deleted over {NAMESPACES} namespaces in "
                  f"{result.seconds:.1f} s ({per_s:,.0f} creates+deletes/s; {result.deleted_at_once} "
                  f"deleted before running), controller killed and restarted {result.restarts} times")
            print(f"  duplicate addresses: {result.duplicates}; leaked ports: {result.leaked_ports}; "
                  f"leaked addresses: {result.leaked_addresses}")
            print(f"  Whereabouts anchor: 128 x 16 = 2,048 pods in > {WHEREABOUTS_S:.0f} s; here "
                  f"2,048 churned pods take {2048 * result.seconds / max(result.created, 1):.1f} s")
        finally:
            await controller.stop()
            await clients.close()
            await driver.remove_all()
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
