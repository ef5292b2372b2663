"""Shared informers (issue 13): watch streams a bay before → after, and events/s through one informer.

In one process, against a real embedded cluster over HTTP and a SQLite database: the three
consumers of a bay (workload rows, job records, the pod-network controller) are started the old
way, each subsystem with streams of its own, then the new way, sharing the process's informers;
the open watch requests are counted on the cluster's store, per resource. Then 3,000 pods are
created straight in the cluster's store and the time until three consumers have all seen them
is taken twice: one shared informer feeding three consumers, and three informers of one
consumer each (the old shape): events/s, and the create → consumer latency (median, p99).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from lightkube.resources.core_v1 import Pod

import bayport.db.all_models  # noqa: F401
from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.conductor.job_watch import BayJobWatch, RecordWriter
from bayport.conductor.watch import BayWatch, RowWriter
from bayport.db.base import Base, make_engine, make_sessionmaker
from bayport.db.models import BayCredential, BayModelRow, BayRow
from bayport.kube.client import ClusterClients
from bayport.kube.informer import Informers, Snapshot
from bayport.network.controller.bay import BayInfo, BayNetwork
from bench.stats import summary

PODS = int(os.environ.get("BENCH_INFORMER_PODS", "3000"))


def _open_watches(cluster: EmbeddedCluster) -> dict[str, int]:
    return {plural: sum(len(ws) for ws in buckets.values())
            for plural, buckets in cluster.store._watchers.items()
            if any(buckets.values())}


def _ours(counts: dict[str, int], base: dict[str, int]) -> dict[str, int]:
    return {plural: n - base.get(plural, 0) for plural, n in counts.items() if n > base.get(plural, 0)}


async def _settle(cluster: EmbeddedCluster) -> dict[str, int]:
    """The open watches once the count has stopped changing."""
    last: dict[str, int] = {}
    for _ in range(50):
        await asyncio.sleep(0.1)
        now = _open_watches(cluster)
        if now == last:
            return now
        last = now
    return last


async def _streams(cluster: EmbeddedCluster, sessions: Any, bay_uuid: str, shared: bool) -> dict[str, int]:
    """Open watch requests with the three consumers of one bay running."""
    clients = ClusterClients(sessions)
    hub = Informers(clients) if shared else None
    rows, records = RowWriter(sessions), RecordWriter(sessions)
    workloads = BayWatch(bay_uuid, clients, rows, sessions, informers=hub)
    jobs = BayJobWatch(bay_uuid, clients, records, sessions, 60.0, informers=hub)
    network = BayNetwork(BayInfo(uuid=bay_uuid, project_id="p"), clients, sessions, asyncio.Semaphore(1),
                         hub or Informers(clients))
    for consumer in (workloads, jobs, network):
        consumer.start()
    try:
        await asyncio.wait_for(asyncio.gather(workloads.wait_synced(), jobs.wait_synced(),
                                              network.settled()), 20)
        return await _settle(cluster)
    finally:
        await workloads.stop()
        await jobs.stop()
        await network.stop()
        if hub is not None:
            await hub.close()
        else:
            await network.informers.close()
        await clients.close()
        await asyncio.sleep(0.3)


class _Counter:
    def __init__(self, created: dict[str, float]) -> None:
        self.created = created
        self.latencies: list[float] = []
        self.done = asyncio.Event()

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        return None

    async def on_event(self, event: str, obj: Any) -> None:
        if event != "ADDED":
            return
        started = self.created.get(obj.metadata.name)
        if started is not None:
            self.latencies.append(time.perf_counter() - started)
            if len(self.latencies) == PODS:
                self.done.set()


async def _throughput(cluster: EmbeddedCluster, sessions: Any, bay_uuid: str, namespace: str,
                      shared: bool) -> tuple[float, list[float]]:
    clients = ClusterClients(sessions)
    hubs = [Informers(clients)] if shared else [Informers(clients) for _ in range(3)]
    created: dict[str, float] = {}
    counters = [_Counter(created) for _ in range(3)]
    subs = [hubs[0 if shared else i].subscribe(bay_uuid, Pod, f"c{i}", c.on_snapshot, c.on_event)
            for i, c in enumerate(counters)]
    try:
        for sub in subs:
            await asyncio.wait_for(sub.synced.wait(), 20)
        cluster.store.create("namespaces", {"metadata": {"name": namespace}})
        started = time.perf_counter()
        for i in range(PODS):
            name = f"p{i}"
            created[name] = time.perf_counter()
            cluster.store.create("pods", {"metadata": {"name": name, "namespace": namespace},
                                          "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                                   "nodeName": "nowhere"}})
            if i % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in counters)), 120)
        elapsed = time.perf_counter() - started
        return elapsed, [lat for c in counters for lat in c.latencies]
    finally:
        for hub in hubs:
            await hub.close()
        await clients.close()


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-informer-") as tmp:
        engine = make_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = make_sessionmaker(engine)
        cluster = EmbeddedCluster(ClusterSpec(name="bench", uid="bench", token="bench-token", node_count=0))
        await cluster.start()
        try:
            async with sessions() as session:
                model = BayModelRow(project_id="p", user_id="u")
                session.add(model)
                await session.flush()
                bay = BayRow(project_id="p", user_id="u", baymodel_id=model.uuid, status="CREATE_COMPLETE")
                session.add(bay)
                await session.flush()
                session.add(BayCredential(bay_uuid=bay.uuid, server=cluster.url, token="bench-token"))
                await session.commit()
            # The cluster's own controllers watch too (one stream per kind): not Bayport's.
            await asyncio.sleep(0.3)
            base = _open_watches(cluster)
            before = _ours(await _streams(cluster, sessions, bay.uuid, shared=False), base)
            after = _ours(await _streams(cluster, sessions, bay.uuid, shared=True), base)
            total_before, total_after = sum(before.values()), sum(after.values())
            print(f"watch streams a bay, before (a set per subsystem): {total_before} {before}")
            print(f"watch streams a bay, after (shared informers):      {total_after} {after}")
            print(f"  ratio after/before: {total_after / total_before:.2f}; pod streams "
                  f"{before.get('pods', 0)} -> {after.get('pods', 0)}")
            figures = {}
            for shared, namespace in ((True, "shared"), (False, "separate")):
                elapsed, latencies = await _throughput(cluster, sessions, bay.uuid, namespace, shared)
                label = ("one informer, three consumers" if shared
                         else "three informers, one consumer each")
                rate = 3 * PODS / elapsed
                figures[shared] = rate
                print(f"{label}: {rate:,.0f} deliveries/s ({PODS} pods x 3 consumers in {elapsed:.2f} s), "
                      f"{PODS / elapsed:,.0f} cluster events/s")
                summary(f"  create -> consumer latency ({label})", latencies)
            print(f"  ratio shared/separate deliveries/s: {figures[True] / figures[False]:.2f}")
            await asyncio.sleep(0.5)   # let the closed watches end on the server's side
        finally:
            await cluster.stop()
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
