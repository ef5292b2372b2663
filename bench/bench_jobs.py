"""Tenant jobs (issue 5): POST /v1/jobs answers, submission → Succeeded, and 1,000 jobs from 10 clients.

A real `bayport serve` process (embedded mode: SQLite, in-memory bus, simulated runtime whose
job pods run 0 s) with a 3-node bay and a tenant with two claims, measured from outside: the
POST answer (the record), submission → the record says Succeeded (polled every 2 ms; the row
follows the cluster through the conductor's watch), then 1,000 jobs posted by 10 concurrent
clients, one in ten retried with its Idempotency-Key, checked for lost and duplicated jobs
against both the rows and the Jobs in the bay's own API. Targets: POST p99 <= 20 ms;
submission → Succeeded p99 <= 150 ms; no job lost or duplicated.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.resources.batch_v1 import Job

from bench.stats import summary

SEQUENTIAL = int(os.environ.get("BENCH_JOBS_SEQUENTIAL", "300"))
CLIENTS = 10
PER_CLIENT = int(os.environ.get("BENCH_JOBS_PER_CLIENT", "100"))
RETRY_SHARE = 0.1
POLL = 0.002
VOLS = [{"pvc": "gluster-exam", "mount": "/dest"}, {"pvc": "nfs-exam", "mount": "/src"}]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _template(ttl: int) -> dict[str, Any]:
    """The seed's template; pods run 0 s in the simulated runtime."""
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job-{}-{}"},
        "spec": {"ttlSecondsAfterFinished": ttl, "template": {
            "metadata": {"annotations": {"bayport.io/simulated-duration": "0"}},
            "spec": {"containers": [{"name": "copy", "image": "busybox:1.28.4",
                                     "imagePullPolicy": "IfNotPresent",
                                     "args": ["/bin/sh", "-c", "{}"], "volumeMounts": []}],
                     "restartPolicy": "Never", "volumes": []}}},
    }


async def _serve(data: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BAYPORT_DEFAULT_RUNTIME": "simulated",
           "BAYPORT_DATA_DIR": str(data), "BAYPORT_BIND": f"127.0.0.1:{port}",
           "BAYPORT_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bayport"), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if (data / "admin-token").exists():
            try:
                httpx.get(url + "/", timeout=1)
                return proc
            except httpx.HTTPError:
                pass
        await asyncio.sleep(0.05)
    proc.terminate()
    raise RuntimeError("bayport serve did not come up")


async def _bay(c: httpx.AsyncClient) -> str:
    await c.post("/v1/baymodels", json={"name": "bench", "labels": {"runtime": "simulated"}})
    bay = (await c.post("/v1/bays", json={"name": "jobbay", "baymodel_id": "bench",
                                          "node_count": 3})).json()
    while True:
        status = (await c.get(f"/v1/bays/{bay['uuid']}")).json()["status"]
        if status == "CREATE_COMPLETE":
            return str(bay["uuid"])
        if status.endswith("FAILED"):
            raise RuntimeError(f"bay {status}")
        await asyncio.sleep(0.05)


async def _tenant(c: httpx.AsyncClient, bay: str, tenant_id: str, ttl: int) -> None:
    for path, body in ((("/v1/tenants", {"id": tenant_id, "name": tenant_id, "bay": bay}),
                        (f"/v1/tenants/{tenant_id}/volumes", {"name": "gluster-exam"}),
                        (f"/v1/tenants/{tenant_id}/volumes", {"name": "nfs-exam"}))):
        resp = await c.post(path, json=body)
        if resp.status_code != 201:
            raise RuntimeError(resp.text)
    resp = await c.put(f"/v1/tenants/{tenant_id}/template", json=_template(ttl))
    if resp.status_code != 200:
        raise RuntimeError(resp.text)


async def _one(c: httpx.AsyncClient, tenant_id: str, posts: list[float], done: list[float]) -> None:
    start = time.perf_counter()
    resp = await c.post("/v1/jobs", json={"tenant": tenant_id, "cmd": "cp -r /src/* /dest/", "vols": VOLS})
    posts.append(time.perf_counter() - start)
    if resp.status_code != 201:
        raise RuntimeError(resp.text)
    job = resp.json()
    while job["status"] not in ("Succeeded", "Failed"):
        await asyncio.sleep(POLL)
        job = (await c.get(f"/v1/jobs/{job['uuid']}")).json()
    if job["status"] != "Succeeded":
        raise RuntimeError(f"job failed: {job}")
    done.append(time.perf_counter() - start)


async def _client(url: str, token: str, tenant_id: str, posts: list[float],
                  answers: dict[str, set[str]]) -> None:
    """One of the concurrent clients: PER_CLIENT jobs, one in ten posted twice with its key."""
    rng = random.Random(tenant_id + str(id(posts)))
    async with httpx.AsyncClient(base_url=url, headers={"X-Auth-Token": token}, timeout=60) as c:
        for _ in range(PER_CLIENT):
            key = str(uuid.uuid4())
            tries = 2 if rng.random() < RETRY_SHARE else 1
            for _ in range(tries):
                start = time.perf_counter()
                resp = await c.post("/v1/jobs", headers={"Idempotency-Key": key},
                                    json={"tenant": tenant_id, "cmd": f"echo {key}", "vols": VOLS})
                posts.append(time.perf_counter() - start)
                if resp.status_code != 201:
                    raise RuntimeError(resp.text)
                answers.setdefault(key, set()).add(resp.json()["uuid"])


async def _records(c: httpx.AsyncClient, tenant_id: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    body = (await c.get("/v1/jobs", params={"tenant": tenant_id, "limit": 1000})).json()
    while True:
        jobs.extend(body["jobs"])
        if "next" not in body:
            return jobs
        body = (await c.get(body["next"])).json()


class ClusterJobs:
    """Every Job the bay's own API reports created in a namespace, by uid, with its job-uuid label."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.client = AsyncClient(config=KubeConfig.from_dict(yaml.safe_load(kubeconfig)),
                                  trust_env=False)
        self.namespace = namespace
        self.created: dict[str, str | None] = {}
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event, job in self.client.watch(Job, namespace=self.namespace):
            meta = job.metadata
            if event == "ADDED" and meta is not None and meta.uid:
                self.created[meta.uid] = (meta.labels or {}).get("bayport.io/job-uuid")

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


async def _concurrent(c: httpx.AsyncClient, url: str, token: str, bay: str) -> None:
    tenant_id = "bench-concurrent"
    await _tenant(c, bay, tenant_id, ttl=0)
    cluster = ClusterJobs((await c.get(f"/v1/bays/{bay}/config")).text, tenant_id)
    await asyncio.sleep(0.2)
    posts: list[float] = []
    answers: dict[str, set[str]] = {}
    started = time.perf_counter()
    await asyncio.gather(*(_client(url, token, tenant_id, posts, answers) for _ in range(CLIENTS)))
    posted = time.perf_counter() - started
    total = CLIENTS * PER_CLIENT
    while True:
        records = await _records(c, tenant_id)
        if len(records) >= total and all(r["status"] in ("Succeeded", "Failed") for r in records):
            break
        await asyncio.sleep(0.05)
    finished = time.perf_counter() - started
    await asyncio.sleep(0.5)
    await cluster.close()
    summary(f"POST /v1/jobs, {CLIENTS} concurrent clients ({len(posts)} posts incl. retries)", posts)
    print(f"{total} jobs posted in {posted:.2f} s ({total / posted:,.0f}/s); all finished after "
          f"{finished:.2f} s ({total / finished:,.0f} jobs/s submitted -> Succeeded)")
    row_uuids = {r["uuid"] for r in records}
    cluster_uuids = list(cluster.created.values())
    replays_consistent = all(len(uuids) == 1 for uuids in answers.values())
    lost = len({next(iter(u)) for u in answers.values()} - row_uuids)
    duplicated = (len(records) - len(answers)) + (len(cluster_uuids) - len(set(cluster_uuids)))
    print(f"keys {len(answers)}; rows {len(records)} ({len(row_uuids)} distinct uuids, "
          f"{len({r['name'] for r in records})} distinct names, "
          f"{sum(r['status'] == 'Succeeded' for r in records)} Succeeded); Jobs the cluster created "
          f"{len(cluster_uuids)} ({len(set(cluster_uuids))} distinct job uuids, "
          f"{len(set(cluster_uuids) ^ row_uuids)} without a matching row); retried keys answered "
          f"one job each: {replays_consistent}")
    print(f"lost jobs: {lost}, duplicated jobs: {duplicated} (target 0 and 0)")


async def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="bayport-bench-jobs-"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = await _serve(data, url, port)
    try:
        token = (data / "admin-token").read_text().strip()
        async with httpx.AsyncClient(base_url=url, headers={"X-Auth-Token": token}, timeout=60) as c:
            bay = await _bay(c)
            await _tenant(c, bay, "5c6e1bd2a7f0e4a1b2c3d4e5", ttl=0)
            for _ in range(10):  # warm-up: connections, caches, the bay's watch
                await _one(c, "5c6e1bd2a7f0e4a1b2c3d4e5", [], [])
            posts: list[float] = []
            done: list[float] = []
            for _ in range(SEQUENTIAL):
                await _one(c, "5c6e1bd2a7f0e4a1b2c3d4e5", posts, done)
            summary(f"POST /v1/jobs answer, one at a time ({SEQUENTIAL} jobs; target p99 <= 20 ms)", posts)
            summary("submission -> record Succeeded, 0 s job (2 ms polling; target p99 <= 150 ms)", done)
            await _concurrent(c, url, token, bay)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
