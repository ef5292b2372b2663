"""Restart = resume (issue 9): ``bayport serve`` stopped with SIGTERM, then SIGKILL, and started.

The console script as a subprocess, as users run it. BAYS simulated bays with PODS pods between
them (made through Bayport's API, so rows, ports and cluster objects all exist), then, when
podman works here, one podman bay with PODMAN_PODS busybox pods. After each stop the server is
started on the same data dir and measured from the exec: until its API answers, until every bay
answers its Kubernetes API with the kubeconfig handed out before, until every pod is Running
again (samples per bay and per pod: median, p99). Then objects lost (pod uids before and not
after, Bayport rows before and not after: must be 0) and containers restarted (a restartCount
or a container's start time that changed; for podman, the container's StartedAt: must be 0).
Defaults are the issue's size (10 bays, 1,000 pods, 20 podman pods); BENCH_RESTART_BAYS,
BENCH_RESTART_PODS, BENCH_RESTART_PODMAN_PODS change them (PODMAN_PODS=0 skips podman).
Prints, never asserts on a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Pod

from bayport.cluster.runtime.select import podman_problem
from bench.stats import summary

BAYS = int(os.environ.get("BENCH_RESTART_BAYS", "10"))
PODS = int(os.environ.get("BENCH_RESTART_PODS", "1000"))
PODMAN_PODS = int(os.environ.get("BENCH_RESTART_PODMAN_PODS", "20"))
IMAGE = "localhost/busybox:1.28.4"
CONCURRENT = 16
TIMEOUT = 300.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _manifest(name: str, podman: bool) -> str:
    image = f"{IMAGE}\n    imagePullPolicy: Never\n    command: [sleep, '3600']" if podman else "nginx"
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n"
            f"  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: {image}\n")


class Server:
    """One ``bayport serve`` on a data dir, started again and again."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> float:
        self.starts += 1
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("BAYPORT_")},
               "BAYPORT_DATA_DIR": str(self.data), "BAYPORT_BIND": f"127.0.0.1:{self.port}",
               "BAYPORT_LOG_LEVEL": "WARNING", "BAYPORT_DEFAULT_RUNTIME": "simulated"}
        log = (self.data.parent / f"serve-{self.starts}.log").open("wb")
        began = time.perf_counter()
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "bayport"), "serve"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return began

    async def answering(self) -> None:
        deadline = time.perf_counter() + 120
        async with httpx.AsyncClient() as c:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"bayport serve exited {self.proc.returncode}; see {self.data.parent}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get(self.url + "/", timeout=2)).status_code < 500:
                        return
                if time.perf_counter() > deadline:
                    raise RuntimeError("bayport serve did not answer in 120 s")
                await asyncio.sleep(0.01)

    def stop(self, sig: int) -> float:
        assert self.proc is not None
        began = time.perf_counter()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.perf_counter() - began

    def client(self) -> httpx.AsyncClient:
        token = (self.data / "admin-token").read_text().strip()
        return httpx.AsyncClient(base_url=self.url, headers={"X-Auth-Token": token}, timeout=60)


async def _bays(c: httpx.AsyncClient, count: int, runtime: str) -> list[str]:
    await c.post("/v1/baymodels", json={"name": runtime, "labels": {"runtime": runtime}})
    made = [(await c.post("/v1/bays", json={"name": f"{runtime}-{i}", "baymodel_id": runtime,
                                            "node_count": 2})).json()["uuid"] for i in range(count)]
    for uuid in made:
        while (status := (await c.get(f"/v1/bays/{uuid}")).json()["status"]) != "CREATE_COMPLETE":
            if status.endswith("FAILED"):
                raise RuntimeError(f"bay {uuid}: {status}")
            await asyncio.sleep(0.1)
    return made


async def _pods(c: httpx.AsyncClient, bays: list[str], count: int, podman: bool) -> None:
    sem = asyncio.Semaphore(CONCURRENT)

    async def one(i: int) -> None:
        async with sem:
            resp = await c.post("/v1/pods", json={"bay_uuid": bays[i % len(bays)],
                                                  "manifest": _manifest(f"p-{i}", podman)})
            if resp.status_code != 201:
                raise RuntimeError(resp.text)

    await asyncio.gather(*(one(i) for i in range(count)))


async def _kube(c: httpx.AsyncClient, bay: str) -> AsyncClient:
    config = (await c.get(f"/v1/bays/{bay}/config")).text
    return AsyncClient(config=KubeConfig.from_dict(yaml.safe_load(config)), trust_env=False)


def _containers(pod: Pod) -> tuple[str, str, int, str]:
    """(uid, phase, restarts, start time of the first container)."""
    statuses = (pod.status.containerStatuses if pod.status else None) or []
    started = ""
    if statuses and statuses[0].state and statuses[0].state.running:
        started = str(statuses[0].state.running.startedAt)
    restarts = sum(s.restartCount or 0 for s in statuses)
    meta = pod.metadata
    return (meta.uid or "" if meta else "", (pod.status.phase or "") if pod.status else "", restarts, started)


async def _observe(kubes: dict[str, AsyncClient]) -> dict[str, dict[str, tuple[str, str, int, str]]]:
    async def one(kube: AsyncClient) -> dict[str, tuple[str, str, int, str]]:
        return {f"{p.metadata.namespace}/{p.metadata.name}": _containers(p)   # type: ignore[union-attr]
                async for p in kube.list(Pod, namespace="*")}

    listed = await asyncio.gather(*(one(k) for k in kubes.values()))
    return dict(zip(kubes, listed, strict=True))


async def _wait_running(kubes: dict[str, AsyncClient], began: float, want: int
                        ) -> tuple[list[float], list[float], dict[str, Any]]:
    """Per bay: seconds from ``began`` until it answered; per pod: until seen Running."""
    bay_ready: dict[str, float] = {}
    pod_ready: dict[str, float] = {}
    seen: dict[str, Any] = {}
    deadline = time.perf_counter() + TIMEOUT
    while len(pod_ready) < want:
        for bay, kube in kubes.items():
            try:
                pods = {f"{p.metadata.namespace}/{p.metadata.name}": _containers(p)  # type: ignore[union-attr]
                        async for p in kube.list(Pod, namespace="*")}
            except Exception:   # not serving yet (connection refused, TLS handshake …)
                continue
            now = time.perf_counter() - began
            bay_ready.setdefault(bay, now)
            seen[bay] = pods
            for key, (_, phase, _, _) in pods.items():
                if phase == "Running":
                    pod_ready.setdefault(f"{bay}/{key}", now)
        if time.perf_counter() > deadline:
            print(f"  only {len(pod_ready)}/{want} pods Running after {TIMEOUT:.0f} s")
            break
        await asyncio.sleep(0.05)
    return list(bay_ready.values()), list(pod_ready.values()), seen


async def _rows(c: httpx.AsyncClient) -> set[str]:
    rows: set[str] = set()
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = (await c.get("/v1/pods", params=params)).json()
        rows.update(p["uuid"] for p in page["pods"])
        if not page.get("next") or not page["pods"]:
            return rows
        params = {"limit": 1000, "marker": page["pods"][-1]["uuid"]}


def _podman_started(bays: list[str]) -> dict[str, str]:
    started: dict[str, str] = {}
    for bay in bays:
        out = subprocess.run(["podman", "ps", "-a", "--filter", f"label=bayport.cluster={bay}",
                              "--format", "{{.ID}} {{.StartedAt}}"], check=False, capture_output=True,
                             text=True, timeout=60).stdout
        started.update(line.split(" ", 1) for line in out.splitlines() if " " in line)  # type: ignore[misc]
    return started


async def _round(label: str, server: Server, bays: list[str], pods: int, podman: bool) -> None:
    async with server.client() as c:
        kubes = {bay: await _kube(c, bay) for bay in bays}
        before = await _observe(kubes)
        rows_before = await _rows(c)
    containers_before = _podman_started(bays) if podman else {}
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            stopped = server.stop(sig)
            began = server.start()
            await server.answering()
            api = time.perf_counter() - began
            bay_times, pod_times, after = await _wait_running(kubes, began, pods)
            async with server.client() as c:
                rows_after = await _rows(c)
            name = signal.Signals(sig).name
            print(f"{label}, {name}: stop took {stopped:.2f} s; API answered after {api:.2f} s; every pod "
                  f"Running after {max(pod_times, default=float('nan')):.2f} s")
            summary(f"  {label} {name}: bay answers (s from exec)", bay_times, unit="s")
            summary(f"  {label} {name}: pod Running again (s from exec)", pod_times, unit="s")
            lost = sum(1 for bay in bays for key, v in before[bay].items()
                       if after.get(bay, {}).get(key, ("",))[0] != v[0])
            kept = [(v, after[bay][key]) for bay in bays for key, v in before[bay].items()
                    if key in after.get(bay, {})]
            counted = sum(1 for old, new in kept if new[2] != old[2])
            started = sum(1 for old, new in kept if new[3] != old[3])
            line = (f"  {label} {name}: objects lost {lost} pods + {len(rows_before - rows_after)} rows "
                    f"(must be 0); containers restarted: restartCount changed {counted}, "
                    f"startedAt changed {started}")
            if podman:
                now = _podman_started(bays)
                changed = sum(1 for cid, at in containers_before.items() if now.get(cid) != at)
                line += f"; podman containers whose StartedAt changed {changed} of {len(containers_before)}"
            print(line + " (must be 0)")
    finally:
        for kube in kubes.values():
            await kube.close()


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bayport-bench-restart-"))
    server = Server(root / "data")
    server.start()
    try:
        await server.answering()
        async with server.client() as c:
            sim = await _bays(c, BAYS, "simulated")
            made = time.perf_counter()
            await _pods(c, sim, PODS, podman=False)
            print(f"{BAYS} simulated bays, {PODS} pods created in {time.perf_counter() - made:.1f} s")
        async with server.client() as c:
            kubes = {bay: await _kube(c, bay) for bay in sim}
            await _wait_running(kubes, time.perf_counter(), PODS)
            for kube in kubes.values():
                await kube.close()
        await _round(f"{BAYS} bays/{PODS} pods (simulated)", server, sim, PODS, podman=False)

        problem = await podman_problem(bayport_network=True) if PODMAN_PODS else "BENCH_RESTART_PODMAN_PODS=0"
        if problem is not None:
            print(f"podman: skipped ({problem})")
            return
        async with server.client() as c:
            pm = await _bays(c, 1, "podman")
            made = time.perf_counter()
            await _pods(c, pm, PODMAN_PODS, podman=True)
        async with server.client() as c:
            kubes = {bay: await _kube(c, bay) for bay in pm}
            _, first, _ = await _wait_running(kubes, made, PODMAN_PODS)
            print(f"podman bay: {PODMAN_PODS} pods Running {max(first, default=float('nan')):.1f} s after "
                  "their creates")
            for kube in kubes.values():
                await kube.close()
        # Only the podman bay is measured now; the simulated ones restart beside it, as before.
        await _round(f"podman bay/{PODMAN_PODS} pods", server, pm, PODMAN_PODS, podman=True)
        async with server.client() as c:
            await c.delete(f"/v1/bays/{pm[0]}")
            for _ in range(600):
                if (await c.get(f"/v1/bays/{pm[0]}")).status_code == 404:
                    break
                await asyncio.sleep(0.1)
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop(signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)   # simulated bays only by now: nothing on the host


if __name__ == "__main__":
    asyncio.run(main())
