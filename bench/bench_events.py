"""Event stream and metrics (issue 15): latency of a change to its SSE event, fan-out to 200
subscribers while 50 pods are created, and the cost of the metrics middleware on GET one template.

Latency is the event's commit-time stamp (``at``, written by the log's trigger) to the moment a
subscriber has parsed it, on `bayport serve` (SQLite, embedded), measured from outside. The
middleware cost runs the API alone in a child process twice over, with and without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import orjson
import psutil

from bench.httpload import load
from bench.stats import percentile, summary

SUBSCRIBERS = 200
PODS = 50
BAYS = 20


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Subscriber:
    """A bare SSE client (asyncio streams, no HTTP library): 200 of them must not be the
    bottleneck of the measurement. Records (event, seconds from its ``at`` to parsed)."""

    def __init__(self, port: int, token: str, query: str) -> None:
        self.port, self.token, self.query = port, token, query
        self.received: list[tuple[dict[str, object], float]] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        writer.write(f"GET /v1/events?{self.query} HTTP/1.1\r\nHost: b\r\nX-Auth-Token: "
                     f"{self.token}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b": bayport events"):
                    self.ready.set()
                if line.startswith(b"data: {"):
                    event = orjson.loads(line[6:])
                    at = datetime.fromisoformat(str(event["at"])).timestamp()
                    self.received.append((event, time.time() - at))
        finally:
            writer.close()


async def _subscribe(port: int, token: str, query: str, n: int) -> list[Subscriber]:
    subs = [Subscriber(port, token, query) for _ in range(n)]
    for s in subs:
        s.task = asyncio.create_task(s.run())
    await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 60)
    return subs


async def _stop(subs: list[Subscriber]) -> None:
    for s in subs:
        if s.task is not None:
            s.task.cancel()
    await asyncio.gather(*(s.task for s in subs if s.task is not None), return_exceptions=True)


async def _until_terminal(c: httpx.AsyncClient, path: str, statuses: set[str]) -> None:
    for _ in range(6000):
        if (await c.get(path)).json().get("status") in statuses:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{path} never reached {statuses}")


async def _events_and_fanout(url: str, port: int, token: str, proc: psutil.Process) -> None:
    headers = {"X-Auth-Token": token}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c:
        assert (await c.post("/v1/baymodels", json={"name": "k8s"})).status_code == 201
        # 1. Latency: one subscriber, BAYS bays created one after another (all their events).
        [one] = await _subscribe(port, token, "kind=bay", 1)
        for i in range(BAYS):
            bay = (await c.post("/v1/bays", json={"name": f"b{i}", "baymodel_id": "k8s"})).json()
            await _until_terminal(c, f"/v1/bays/{bay['uuid']}", {"CREATE_COMPLETE", "CREATE_FAILED"})
        await asyncio.sleep(0.5)
        await _stop([one])
        summary(f"event latency, bay change -> event parsed ({BAYS} bays)",
                [lat for _, lat in one.received])
        # 2. Fan-out: SUBSCRIBERS streams on one bay while PODS pods are created in it.
        target = bay["uuid"]
        subs = await _subscribe(port, token, f"bay={target}&kind=pod", SUBSCRIBERS)
        cpu0, t0 = proc.cpu_times(), time.perf_counter()
        sem = asyncio.Semaphore(10)

        async def pod(i: int) -> None:
            manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
            async with sem:
                resp = await c.post("/v1/pods", json={"bay_uuid": target,
                                                      "manifest": orjson.dumps(manifest).decode()})
                assert resp.status_code < 300, resp.text

        await asyncio.gather(*(pod(i) for i in range(PODS)))
        want = len(subs[0].received)
        for _ in range(300):              # until every subscriber has what the first one has
            await asyncio.sleep(0.1)
            counts = {len(s.received) for s in subs}
            if len(counts) == 1 and want == len(subs[0].received):
                break
            want = len(subs[0].received)
        elapsed = time.perf_counter() - t0
        cpu1 = proc.cpu_times()
        await _stop(subs)
        lat = [x for s in subs for _, x in s.received]
        per_sub = sorted(len(s.received) for s in subs)
        print(f"fan-out: {SUBSCRIBERS} subscribers x {per_sub[0]}..{per_sub[-1]} pod events each "
              f"({len(lat)} deliveries) in {elapsed:.1f} s")
        summary("  delivery latency, commit -> parsed by each subscriber", lat)
        print(f"  delivery p99 {percentile(lat, 99) * 1000:.1f} ms; API process CPU during it "
              f"{(cpu1.user + cpu1.system - cpu0.user - cpu0.system):.2f} s "
              f"({100 * (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed:.0f} % of one core)")


async def _serve_api(data_dir: str, port: int, with_metrics: bool) -> None:
    """Child process: the API alone (no conductor), with or without the metrics middleware."""
    import uvicorn

    from bayport.api.app import build_state, create_app
    from bayport.cli import runner
    from bayport.config import Settings

    settings = Settings(data_dir=Path(data_dir), bind=f"127.0.0.1:{port}")
    await runner.upgrade_db(settings, bootstrap=True)
    state = await build_state(settings)
    config = uvicorn.Config(create_app(state, http_metrics=with_metrics), host="127.0.0.1",
                            port=port, log_level="warning", access_log=False, lifespan="off",
                            http="httptools", loop="none")
    await uvicorn.Server(config).serve()


async def _metrics_cost() -> None:
    data = tempfile.mkdtemp(prefix="bayport-bench-metrics-")
    rates: dict[bool, list[float]] = {True: [], False: []}
    for with_metrics in (True, False) * 3:
        port = _port()
        child = subprocess.Popen([sys.executable, "-m", "bench.bench_events", "serve-api", data,
                                  str(port), "1" if with_metrics else "0"])
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    httpx.get(url + "/", timeout=1)
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            token = (Path(data) / "admin-token").read_text().strip()
            headers = {"X-Auth-Token": token}
            async with httpx.AsyncClient(base_url=url, headers=headers) as c:
                if (await c.get("/v1/baymodels/k8s")).status_code == 404:
                    await c.post("/v1/baymodels", json={"name": "k8s"})
            await load(url, "/v1/baymodels/k8s", concurrency=8, duration=1.0, headers=headers)
            result = await load(url, "/v1/baymodels/k8s", concurrency=8, duration=4.0,
                                headers=headers)
            assert set(result.statuses) == {200}, result.statuses
            rates[with_metrics].append(len(result.latencies) / result.elapsed)
        finally:
            child.send_signal(signal.SIGINT)
            child.wait(30)
    on, off = max(rates[True]), max(rates[False])
    print(f"GET one template, 8 connections: with metrics {on:,.0f} req/s, without {off:,.0f} "
          f"req/s (best of 3 each); with/without = {on / off:.3f}")


async def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="bayport-bench-events-"))
    port = _port()
    env = {**os.environ, "BAYPORT_DATA_DIR": str(data), "BAYPORT_BIND": f"127.0.0.1:{port}",
           "BAYPORT_DEFAULT_RUNTIME": "simulated"}
    bayport = str(Path(sys.executable).parent / "bayport")
    proc = subprocess.Popen([bayport, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        token = (data / "admin-token").read_text().strip()
        await _events_and_fanout(url, port, token, psutil.Process(proc.pid))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    await _metrics_cost()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-api"]:
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT that stops it
            asyncio.run(_serve_api(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"))
    else:
        asyncio.run(main())
