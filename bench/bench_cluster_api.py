"""Embedded cluster API: pod creates/s over HTTP on a 100-node cluster, and label-selected list
latency with 100,000 pods on 1,000 nodes (plus resident memory per 10,000 pods).

The create rate is measured twice: with the httpx clients in another process (the server's
capacity; with 2 cores the client's own CPU would otherwise be counted against the server) and
with them in the cluster's own event loop (the embedded `bayport serve` case). Everything runs
on uvloop, as `bayport serve` does.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import uvloop

from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.cluster.http import ApiApp, ApiContext
from bayport.cluster.http.server import ApiServer
from bayport.cluster.store import Store
from bench.stats import rate, summary

KWOK_PODS_PER_S = 20.0         # reference: KWOK's documented pod creation throughput
CREATES = 2000
IN_FLIGHT = 8
CLIENT_PROCESSES = 2          # httpx costs more CPU per request than the server does
NAMESPACES = 1000              # x 100 pods = 100,000 pods
PODS_PER_NAMESPACE = 100
NODES = 1000
LISTS = 300


def pod(name: str, ns: str, **labels: str) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [container]}}


async def _drive(url: str, names: range, in_flight: int) -> tuple[list[float], float]:
    """Create the pods ``names`` through ``in_flight`` concurrent httpx requests."""
    latencies: list[float] = []
    counter = iter(names)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer t"}, limits=limits,
                                 timeout=30) as client:
        async def worker() -> None:
            for i in counter:
                body = pod(f"p{i}", "default", app="bench", shard=str(i % 10))
                started = time.perf_counter()
                r = await client.post("/api/v1/namespaces/default/pods", json=body)
                latencies.append(time.perf_counter() - started)
                if r.status_code != 201:
                    raise RuntimeError(f"create failed: {r.status_code} {r.text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return latencies, time.perf_counter() - started


def _client_process(url: str, names: range, in_flight: int, out: Any) -> None:
    out.put(uvloop.run(_drive(url, names, in_flight)))


async def create_rate(separate_client: bool, *, durable: bool = False,
                      store_url: str | None = None) -> float:
    """Pod creates/s; ``durable``: with the object journal every write goes to first (SQLite, or
    PostgreSQL at ``store_url``)."""
    state = Path(tempfile.mkdtemp(prefix="bench-journal-")) if durable else None
    cluster = EmbeddedCluster(ClusterSpec(name="bench", uid=f"bench-{time.time_ns()}", token="t",
                                          node_count=100, data_dir=state, store_url=store_url))
    url = await cluster.start()
    cpu_started = time.process_time()
    rv_started = cluster.store.resource_version
    batches_started = cluster.store.group.batches if cluster.store.group is not None else 0
    if separate_client:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        share = CREATES // CLIENT_PROCESSES
        procs = [ctx.Process(target=_client_process,
                             args=(url, range(k * share, (k + 1) * share), IN_FLIGHT // CLIENT_PROCESSES,
                                   queue))
                 for k in range(CLIENT_PROCESSES)]
        for proc in procs:
            proc.start()
        results = [await asyncio.to_thread(queue.get) for _ in procs]
        for proc in procs:
            await asyncio.to_thread(proc.join)
        latencies = [x for lat, _ in results for x in lat]
        elapsed = max(e for _, e in results)
        where = f"clients in {CLIENT_PROCESSES} other processes"
    else:
        latencies, elapsed = await _drive(url, range(CREATES), IN_FLIGHT)
        where = "clients in the cluster's event loop"
    store = ("durable store (PostgreSQL journal)" if store_url else
             "durable store (SQLite journal)" if durable else "in-memory store")
    summary(f"pod create over HTTP, {IN_FLIGHT} in flight, 100 nodes, controllers on, {where}, {store}",
            latencies)
    rate("  pod creates", CREATES, elapsed, anchor=KWOK_PODS_PER_S, anchor_name="KWOK (~20 pods/s)")
    started = time.perf_counter()
    running: list[dict[str, Any]] = []
    while time.perf_counter() - started < 30:
        running = cluster.store.list_snapshots("pods", "default", field_selector="status.phase=Running")[0]
        if len(running) == CREATES:
            break
        await asyncio.sleep(0.1)
    print(f"  pods Running: {len(running)}/{CREATES} ({time.perf_counter() - started:.1f} s after the "
          "last create returned)")
    group = cluster.store.group
    if group is not None and group.batches > batches_started:
        writes = cluster.store.resource_version - rv_started
        print(f"  group commit: {writes:,} writes in {group.batches - batches_started:,} transactions "
              f"({writes / (group.batches - batches_started):.1f} writes a transaction)")
    if separate_client:
        cpu = (time.process_time() - cpu_started) / CREATES
        print(f"  cluster process CPU per pod (API + store + scheduler + node agent + events): "
              f"{cpu * 1000:.2f} ms -> {1 / cpu:,.0f} pods/s per core when not starved")
    await cluster.stop()
    if state is not None:
        shutil.rmtree(state, ignore_errors=True)
    return CREATES / elapsed


def load(store: Store) -> None:
    for n in range(NODES):
        store.create_owned("nodes", {"metadata": {"name": f"node-{n}"},
                                     "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    for ns in range(NAMESPACES):
        store.create_owned("namespaces", {"metadata": {"name": f"tenant-{ns}"}})
        for i in range(PODS_PER_NAMESPACE):
            obj = pod(f"pod-{i}", f"tenant-{ns}", app="web" if i % 2 else "db", tier=str(i % 4))
            obj["spec"]["nodeName"] = f"node-{(ns * PODS_PER_NAMESPACE + i) % NODES}"
            obj["status"] = {"phase": "Running", "podIP": f"10.{ns // 256}.{ns % 256}.{i}",
                             "conditions": [{"type": "Ready", "status": "True"}]}
            store.create_owned("pods", obj)


async def big_list() -> None:
    proc = psutil.Process()
    gc.collect()
    store = Store()
    base_rss = proc.memory_info().rss
    started = time.perf_counter()
    load(store)
    loaded = time.perf_counter() - started
    gc.collect()
    grown = proc.memory_info().rss - base_rss
    total = store.count("pods")
    print(f"loaded {total:,} pods on {NODES} nodes in {NAMESPACES} namespaces through the store in "
          f"{loaded:.1f} s ({total / loaded:,.0f} creates/s in-process)")
    per_10k = grown / (total / 10_000) / 2**20
    print(f"RSS growth: {grown / 2**20:.0f} MiB total, {per_10k:.1f} MiB per 10,000 pods")
    server = ApiServer(ApiApp(ApiContext(store), "t"))
    url = await server.start()
    latencies: list[float] = []
    items = 0
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer t"}) as client:
        for k in range(LISTS):
            ns = f"tenant-{(k * 37) % NAMESPACES}"
            t0 = time.perf_counter()
            r = await client.get(f"/api/v1/namespaces/{ns}/pods",
                                 params={"labelSelector": "tier in (0,1,2,3)"})
            latencies.append(time.perf_counter() - t0)
            items = len(r.json()["items"])
        summary(f"label-selected list of one namespace's {items} pods over HTTP (100,000 pods stored)",
                latencies)
        t0 = time.perf_counter()
        r = await client.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=node-7"})
        print(f"  field-selected list of one node's {len(r.json()['items'])} pods across all namespaces: "
              f"{(time.perf_counter() - t0) * 1000:.1f} ms")
    in_process = []
    for k in range(LISTS):
        t0 = time.perf_counter()
        store.list_snapshots("pods", f"tenant-{k % NAMESPACES}", label_selector="app=web")
        in_process.append(time.perf_counter() - t0)
    print(f"  in-process store list (no HTTP, no JSON): median {statistics.median(in_process) * 1e6:.0f} us")
    await server.stop()


async def idle_clusters(count: int = 20) -> None:
    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    clusters = [EmbeddedCluster(ClusterSpec(name=f"idle{i}", uid=str(i), token="t", node_count=1))
                for i in range(count)]
    started = time.perf_counter()
    for cluster in clusters:
        await cluster.start()
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = proc.memory_info().rss - before
    print(f"{count} idle clusters (1 master + 1 node each): start {elapsed / count * 1000:.1f} ms each, "
          f"RSS {grown / count / 2**20:.2f} MiB each")
    for cluster in clusters:
        await cluster.stop()


async def run_all() -> None:
    await idle_clusters()
    memory = await create_rate(separate_client=True)
    durable = await create_rate(separate_client=True, durable=True)
    print(f"  durable / in-memory pod creates/s: {durable:,.0f} / {memory:,.0f} = {durable / memory:.2f}")
    pg = await postgres_url()
    if pg is not None:
        on_pg = await create_rate(separate_client=True, durable=True, store_url=pg)
        print(f"  PostgreSQL journal / in-memory pod creates/s: {on_pg:,.0f} / {memory:,.0f} = "
              f"{on_pg / memory:.2f}")
    else:
        print("  (no PostgreSQL at BAYPORT_BENCH_PG or 127.0.0.1:5432: PostgreSQL journal not measured)")
    await create_rate(separate_client=False, durable=True)
    await big_list()


async def postgres_url() -> str | None:
    """The PostgreSQL the bench may use (its own rows, keyed by a fresh cluster uid), if any."""
    import psycopg

    url = os.environ.get("BAYPORT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.Error:
        return None


def main() -> None:
    uvloop.run(run_all())         # the loop `bayport serve` runs the embedded clusters on


if __name__ == "__main__":
    main()
