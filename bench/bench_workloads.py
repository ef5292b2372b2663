"""Workloads (issue 3): pod-create through Bayport's API until the row shows Running.

A real `bayport serve` process (embedded mode: SQLite, in-memory bus, simulated runtime) with
a 3-node bay, measured from outside: POST /v1/pods latency, POST start → GET shows Running
(polled every 2 ms), and how far the row trails the cluster (a lightkube watch on the bay,
in this process, sees the pod Running; only then is the row polled, so the polling does not
load the server while the pod starts). Targets: create → Running
p50 ≤ 30 ms, p99 ≤ 100 ms; the row within 100 ms of the cluster.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Pod

from bench.stats import summary

PODS = int(os.environ.get("BENCH_WORKLOAD_PODS", "200"))
CONCURRENT = 8
POLL = 0.002


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manifest(i: int) -> str:
    return (f"apiVersion: v1beta3\nkind: Pod\nmetadata:\n  name: bench-{i}\n  labels: {{app: bench}}\n"
            "spec:\n  containers:\n  - name: c\n    image: kubernetes/redis:v1\n"
            "    ports:\n    - containerPort: 6379\n")


async def _serve(data: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BAYPORT_DEFAULT_RUNTIME": "simulated",
           "BAYPORT_DATA_DIR": str(data), "BAYPORT_BIND": f"127.0.0.1:{port}",
           "BAYPORT_LOG_LEVEL": "WARNING"}
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bayport"), "serve"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"bayport serve exited {proc.returncode}; see {data / 'serve.log'}")
        if (data / "admin-token").exists():
            try:
                httpx.get(url + "/", timeout=1)
                return proc
            except httpx.HTTPError:
                pass
        await asyncio.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"bayport serve did not come up; see {data / 'serve.log'}")


async def _bay(c: httpx.AsyncClient) -> str:
    await c.post("/v1/baymodels", json={"name": "bench"})
    bay = (await c.post("/v1/bays", json={"name": "benchbay", "baymodel_id": "bench",
                                          "node_count": 3})).json()
    while True:
        status = (await c.get(f"/v1/bays/{bay['uuid']}")).json()["status"]
        if status == "CREATE_COMPLETE":
            return str(bay["uuid"])
        if status.endswith("FAILED"):
            raise RuntimeError(f"bay {status}")
        await asyncio.sleep(0.05)


class ClusterWatch:
    """When this process first saw each pod Running in the bay's own API."""

    def __init__(self, kubeconfig: str) -> None:
        self.client = AsyncClient(config=KubeConfig.from_dict(yaml.safe_load(kubeconfig)),
                                  trust_env=False)
        self.running: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Event] = {}
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for _, pod in self.client.watch(Pod, namespace="default"):
            name = pod.metadata.name if pod.metadata else None
            if name and pod.status and pod.status.phase == "Running" and name not in self.running:
                self.running[name] = time.perf_counter()
                self.waiters.setdefault(name, asyncio.Event()).set()

    async def wait_running(self, name: str, timeout: float) -> None:
        await asyncio.wait_for(self.waiters.setdefault(name, asyncio.Event()).wait(), timeout)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


async def _one(c: httpx.AsyncClient, i: int, posts: list[float], running: list[float],
               seen: dict[str, float], cluster: ClusterWatch, poll: float = POLL) -> None:
    """POST, then poll the row for Running; polling starts only once the cluster says Running,
    so the benchmark's own GETs do not slow down what it measures."""
    start = time.perf_counter()
    resp = await c.post("/v1/pods", json={"bay_uuid": "benchbay", "manifest": _manifest(i)})
    posts.append(time.perf_counter() - start)
    if resp.status_code != 201:
        raise RuntimeError(resp.text)
    uuid = resp.json()["uuid"]
    status = resp.json()["status"]
    if status != "Running":
        try:
            await cluster.wait_running(f"bench-{i}", 60)
        except TimeoutError:
            raise RuntimeError(f"pod bench-{i} is not Running in the cluster after 60 s") from None
    deadline = time.perf_counter() + 10
    while status != "Running":
        status = (await c.get(f"/v1/pods/{uuid}")).json()["status"]
        if status == "Running":
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"pod bench-{i} Running in the cluster, row still {status} after 10 s")
        await asyncio.sleep(poll)
    now = time.perf_counter()
    running.append(now - start)
    seen[f"bench-{i}"] = now


async def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="bayport-bench-wl-"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = await _serve(data, url, port)
    try:
        token = (data / "admin-token").read_text().strip()
        async with httpx.AsyncClient(base_url=url, headers={"X-Auth-Token": token}, timeout=30) as c:
            await _bay(c)
            watch = ClusterWatch((await c.get("/v1/bays/benchbay/config")).text)
            for i in range(10):  # warm-up: connections, caches
                await _one(c, 10_000 + i, [], [], {}, watch)
            posts: list[float] = []
            running: list[float] = []
            row_seen: dict[str, float] = {}
            for i in range(PODS):
                await _one(c, i, posts, running, row_seen, watch)
            summary(f"POST /v1/pods (one at a time, {PODS} pods)", posts)
            summary("pod-create -> row shows Running (target p50 <= 30, p99 <= 100 ms)", running)
            lag = [row_seen[n] - watch.running[n] for n in row_seen if n in watch.running]
            summary("row Running after the cluster's Running (incl. 2 ms polling)", [max(x, 0) for x in lag])
            # The pod network gives each namespace a /24: free the addresses before the next round.
            deletes: list[float] = []
            for pod in (await c.get("/v1/pods", params={"limit": 1000})).json()["pods"]:
                start = time.perf_counter()
                resp = await c.delete(f"/v1/pods/{pod['uuid']}")
                deletes.append(time.perf_counter() - start)
                if resp.status_code != 204:
                    raise RuntimeError(resp.text)
            summary("DELETE /v1/pods/<uuid> (object and row gone)", deletes)
            await asyncio.sleep(0.5)
            posts, running = [], []
            sem = asyncio.Semaphore(CONCURRENT)

            async def limited(i: int) -> None:
                async with sem:
                    await _one(c, i, posts, running, row_seen, watch)

            started = time.perf_counter()
            await asyncio.gather(*(limited(PODS + i) for i in range(PODS)))
            elapsed = time.perf_counter() - started
            summary(f"POST /v1/pods, {CONCURRENT} in flight", posts)
            summary(f"pod-create -> Running, {CONCURRENT} in flight", running)
            print(f"throughput: {PODS / elapsed:,.0f} pods/s created and Running ({PODS} in {elapsed:.2f} s)")
            await watch.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
