"""Bays and baymodels API (issue 2): a real `bayport serve` process, measured from outside.

Anchors (Magnum 23.0.0 on these machines, WSGI, SQLite, no auth): GET one template 40.6 req/s
(p50 21.6 ms) at concurrency 1, 72.4 req/s at 8; list of 201 templates 9.2 req/s; POST 0.6 req/s;
cluster create → COMPLETE 3.9-10 s; delete → gone 10 s; API + conductor 266 + 306 MiB RSS.
"""

from __future__ import annotations

import asyncio
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
import orjson
import psutil

from bench.httpload import load
from bench.stats import percentile

MAGNUM = {"get1": 40.6, "get8": 72.4, "list": 9.2, "post": 0.6, "create": 3.9, "delete": 10.0,
          "rss": 266 + 306}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _line(label: str, res_lat: list[float], elapsed: float, n: int, anchor: float | None,
          unit_anchor: str = "req/s") -> None:
    rate = n / elapsed if elapsed else 0.0
    med = statistics.median(res_lat) * 1000
    p99 = percentile(res_lat, 99) * 1000
    ratio = f"  ({rate / anchor:,.0f}x Magnum's {anchor} {unit_anchor})" if anchor else ""
    print(f"{label:<34} {rate:>9,.0f} req/s  median {med:6.2f} ms  p99 {p99:6.2f} ms{ratio}")


async def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="bayport-bench-"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BAYPORT_DEFAULT_RUNTIME": "simulated",
           "BAYPORT_DATA_DIR": str(data), "BAYPORT_BIND": f"127.0.0.1:{port}",
           "BAYPORT_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "bayport"), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if (data / "admin-token").exists():
                try:
                    httpx.get(url + "/", timeout=1)
                    break
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        token = (data / "admin-token").read_text().strip()
        hdrs = {"X-Auth-Token": token}
        async with httpx.AsyncClient(base_url=url, headers=hdrs, timeout=30) as c:
            tm = (await c.post("/v1/baymodels", json={"name": "bench"})).json()
            for i in range(200):
                await c.post("/v1/baymodels", json={"name": f"t{i:03d}"})
        one = f"/v1/baymodels/{tm['uuid']}"
        await load(url, one, headers=hdrs, duration=0.5)  # warm-up
        r = await load(url, one, headers=hdrs, concurrency=1, duration=4)
        _line("GET one template, concurrency 1", r.latencies, r.elapsed, len(r.latencies), MAGNUM["get1"])
        r = await load(url, one, headers=hdrs, concurrency=8, duration=4)
        _line("GET one template, concurrency 8", r.latencies, r.elapsed, len(r.latencies), MAGNUM["get8"])
        r = await load(url, "/v1/baymodels?limit=200", headers=hdrs, concurrency=4, duration=4)
        _line("list of 200 templates, conc. 4", r.latencies, r.elapsed, len(r.latencies), MAGNUM["list"])
        r = await load(url, "/v1/baymodels", method="POST", headers=hdrs, concurrency=4, duration=4,
                       body_fn=lambda i: orjson.dumps({"name": f"p{i}", "image_id": "img"}))
        _line("POST baymodel, concurrency 4", r.latencies, r.elapsed, len(r.latencies), MAGNUM["post"])

        create, delete = [], []
        async with httpx.AsyncClient(base_url=url, headers=hdrs, timeout=30) as c:
            for i in range(15):
                t0 = time.perf_counter()
                bay = (await c.post("/v1/bays", json={"name": f"b{i}", "baymodel_id": tm["uuid"],
                                                      "node_count": 3})).json()
                while True:
                    st = (await c.get(f"/v1/bays/{bay['uuid']}")).json()["status"]
                    if st != "CREATE_IN_PROGRESS":
                        break
                    await asyncio.sleep(0.002)
                create.append(time.perf_counter() - t0)
                assert st == "CREATE_COMPLETE", st
                if i >= 10:
                    t0 = time.perf_counter()
                    await c.delete(f"/v1/bays/{bay['uuid']}")
                    while (await c.get(f"/v1/bays/{bay['uuid']}")).status_code != 404:
                        await asyncio.sleep(0.002)
                    delete.append(time.perf_counter() - t0)
        for label, samples, anchor in (("3-node bay POST → CREATE_COMPLETE", create, MAGNUM["create"]),
                                       ("DELETE → gone", delete, MAGNUM["delete"])):
            med = statistics.median(samples)
            print(f"{label:<34} median {med * 1000:7.1f} ms  p99 {percentile(samples, 99) * 1000:7.1f} ms"
                  f"  ({anchor / med:,.0f}x faster than Magnum's {anchor} s)")
        await asyncio.sleep(2)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        print(f"{'serve RSS idle with 10 bays':<34} {rss:7.1f} MiB"
              f"  (Magnum API + conductor {MAGNUM['rss']} MiB)")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
