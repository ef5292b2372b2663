"""Fairness (issue 10): a victim project's pod creates, quiet and while another project floods
bay creates that keep retrying, on a real ``bayport serve``. Before quotas and connection-free
retries, 70 such bays emptied the database pool and the victim got 504s.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.stats import percentile

PODS = 150
IN_FLIGHT = 4
FLOOD_BAYS = 60


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unreachable_kubeconfig() -> str:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
           "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    return base64.b64encode(yaml.safe_dump(doc).encode()).decode()


def _pod(name: str) -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n"
            "spec: {containers: [{name: c, image: busybox}]}\n")


async def _victim_round(c: httpx.AsyncClient, bay: str, prefix: str) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    names = iter(range(PODS))

    async def worker() -> None:
        nonlocal failures
        for i in names:
            began = time.perf_counter()
            resp = await c.post("/v1/pods", json={"bay_uuid": bay, "manifest": _pod(f"{prefix}{i}")})
            latencies.append(time.perf_counter() - began)
            failures += resp.status_code != 201

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return latencies, failures


def _report(label: str, latencies: list[float], failures: int) -> float:
    p99 = percentile(latencies, 99) * 1000
    print(f"{label:<46} median {statistics.median(latencies) * 1000:6.1f} ms  p99 {p99:6.1f} ms  "
          f"failed {failures}/{len(latencies)}")
    return p99


async def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="bayport-fair-"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BAYPORT_DEFAULT_RUNTIME": "simulated", "BAYPORT_DATA_DIR": str(data),
           "BAYPORT_BIND": f"127.0.0.1:{port}", "BAYPORT_LOG_LEVEL": "WARNING",
           "BAYPORT_CLUSTER_ALLOWED_NETWORKS": "127.0.0.0/8"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bayport"), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if (data / "admin-token").exists() and httpx.get(url + "/", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        admin = (data / "admin-token").read_text().strip()
        async with httpx.AsyncClient(base_url=url, headers={"X-Auth-Token": admin}, timeout=60) as a:
            tokens = {p: (await a.post("/v1/tokens", json={"project": p, "user": "u"})).json()["token"]
                      for p in ("victim", "flooder")}
        async with httpx.AsyncClient(base_url=url, headers={"X-Auth-Token": tokens["victim"]},
                                     timeout=60) as v, \
                httpx.AsyncClient(base_url=url, headers={"X-Auth-Token": tokens["flooder"]},
                                  timeout=60) as f:
            await v.post("/v1/baymodels", json={"name": "k8s", "labels": {"runtime": "simulated"}})
            bay = (await v.post("/v1/bays", json={"name": "b", "baymodel_id": "k8s"})).json()["uuid"]
            while (await v.get(f"/v1/bays/{bay}")).json()["status"] != "CREATE_COMPLETE":
                await asyncio.sleep(0.1)
            quiet = _report("victim pod create, quiet", *await _victim_round(v, bay, "q"))

            await f.post("/v1/baymodels", json={"name": "stuck", "driver": "kubeconfig",
                                                 "labels": {"kubeconfig": _unreachable_kubeconfig()}})
            answers = await asyncio.gather(*(f.post("/v1/bays", json={
                "name": f"s{i}", "baymodel_id": "stuck", "bay_create_timeout": 60})
                for i in range(FLOOD_BAYS)))
            accepted = sum(r.status_code == 201 for r in answers)
            refused = sum(r.status_code == 403 for r in answers)
            await asyncio.sleep(1.0)
            stuck = _report(f"victim pod create, {accepted} stuck bays retrying",
                            *await _victim_round(v, bay, "s"))
            stop = asyncio.Event()

            async def keep_flooding() -> None:
                i = FLOOD_BAYS
                while not stop.is_set():
                    await f.post("/v1/bays", json={"name": f"s{i}", "baymodel_id": "stuck"})
                    i += 1

            flood = [asyncio.create_task(keep_flooding()) for _ in range(4)]
            flooded = _report("victim pod create, another project flooding",
                              *await _victim_round(v, bay, "f"))
            stop.set()
            await asyncio.gather(*flood)
            print(f"flooder: {accepted} bays accepted (retrying), {refused} refused by its quota "
                  f"(Operation); victim p99: stuck work - quiet = {stuck - quiet:+.0f} ms, "
                  f"request flood / quiet = {flooded / quiet:.2f} (no per-project rate limit yet)")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
