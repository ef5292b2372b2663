"""Embedded cluster pods: store.create → Running latency, sustained pods/s, RSS per 10k pods.

An EmbeddedCluster with 100 worker nodes and the simulated runtime; pods are created in-process
with ``store.create`` and a pods watch tells when each reaches phase Running (no polling).
Targets from the brief: create → Running in single-digit ms, ≥ 500 pods/s sustained.
``BENCH_CLUSTER_BIG=1`` adds the 100,000 pods on 1,000 nodes run (a few minutes).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from typing import Any

from bayport.cluster.host import EmbeddedCluster
from bayport.cluster.spec import ClusterSpec
from bayport.cluster.store import Store
from bench.stats import rate, summary

LATENCY_PODS = 500
THROUGHPUT_PODS = 5_000
MEMORY_PODS = 10_000
BURST = 100                  # pods created per loop iteration, as many concurrent API clients would


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]}}


class RunningWatcher:
    """Resolves a future per pod name when the pods watch shows it Running."""

    def __init__(self, store: Store) -> None:
        self._watch = store.watch("pods")
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self.running = 0
        self._task = asyncio.create_task(self._run())

    def expect(self, name: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[name] = fut
        return fut

    async def _run(self) -> None:
        while True:
            item = await self._watch.next_raw()
            if item is None:
                return
            _, obj = item
            if (obj.get("status") or {}).get("phase") != "Running":
                continue
            fut = self._waiting.pop(obj["metadata"]["name"], None)
            if fut is not None and not fut.done():
                self.running += 1
                fut.set_result(time.perf_counter())

    async def close(self) -> None:
        self._watch.close()
        await self._task


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _cluster(nodes: int) -> EmbeddedCluster:
    spec = ClusterSpec(name="bench", uid=str(uuid.uuid4()), token="bench", master_count=1, node_count=nodes,
                       node_cidr="10.0.0.0/16", pod_cidr="10.128.0.0/12")
    cluster = EmbeddedCluster(spec)
    await cluster.start()
    await asyncio.sleep(0.2)                      # node agents open their runtimes
    return cluster


async def latency(cluster: EmbeddedCluster) -> None:
    watcher = RunningWatcher(cluster.store)
    samples: list[float] = []
    for i in range(LATENCY_PODS):
        name = f"lat-{i}"
        done = watcher.expect(name)
        began = time.perf_counter()
        cluster.store.create("pods", pod(name))
        samples.append(await done - began)
    await watcher.close()
    summary("create → Running, one at a time (100 nodes)", samples)


async def throughput(cluster: EmbeddedCluster, count: int, label: str) -> float:
    watcher = RunningWatcher(cluster.store)
    futures: list[asyncio.Future[float]] = []
    began = time.perf_counter()
    for i in range(count):
        name = f"{label}-{i}"
        futures.append(watcher.expect(name))
        cluster.store.create("pods", pod(name))
        if i % BURST == BURST - 1:
            await asyncio.sleep(0)
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - began
    await watcher.close()
    rate(f"{label}: pods created → all Running", count, elapsed, anchor=500.0, anchor_name="500/s target")
    return elapsed


async def main() -> None:
    cluster = await _cluster(100)
    try:
        await latency(cluster)
        await throughput(cluster, THROUGHPUT_PODS, "burst")
    finally:
        await cluster.stop()
    gc.collect()
    cluster = await _cluster(100)
    try:
        gc.collect()
        before = rss_mb()
        await throughput(cluster, MEMORY_PODS, "memory")
        await asyncio.sleep(0.5)
        gc.collect()
        after = rss_mb()
        events = cluster.store.count("events")
        print(f"RSS per 10,000 running pods: {(after - before) * 10_000 / MEMORY_PODS:.0f} MiB "
              f"(before {before:.0f} MiB, after {after:.0f} MiB; {events} events stored)")
    finally:
        await cluster.stop()
    if os.environ.get("BENCH_CLUSTER_BIG"):
        gc.collect()
        cluster = await _cluster(1000)
        try:
            await throughput(cluster, 100_000, "big")
            print(f"100,000 pods on 1,000 nodes: RSS {rss_mb():.0f} MiB")
        finally:
            await cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
