"""Protobuf vs JSON on the embedded cluster's API: pod creates/s over HTTP with client-go's
protobuf body and Accept against the same with JSON, and the codec's own decode/encode time for
a pod (what each protobuf request adds to the server's work).

One in-process server (uvloop), one httpx client with a few requests in flight; the two runs
alternate on fresh stores so neither benefits from the other's warm-up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import uvloop

from bayport.cluster.http import ApiApp, ApiContext
from bayport.cluster.http.protobuf import codec
from bayport.cluster.http.server import ApiServer
from bayport.cluster.store import Store
from bench.stats import rate, summary

CREATES = 1500
IN_FLIGHT = 8
CODEC_ROUNDS = 3000
PROTO = "application/vnd.kubernetes.protobuf"


def pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "default", "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}


async def creates(protobuf: bool) -> tuple[list[float], float]:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "default"}})
    server = ApiServer(ApiApp(ApiContext(store), "t"))
    url = await server.start()
    headers = {"Authorization": "Bearer t"}
    if protobuf:
        headers |= {"Content-Type": PROTO, "Accept": f"{PROTO},application/json"}
    else:
        headers |= {"Content-Type": "application/json", "Accept": "application/json"}
    latencies: list[float] = []
    counter = iter(range(CREATES))
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as client:
            async def worker() -> None:
                for i in counter:
                    body = codec.encode(pod(i)) if protobuf else orjson.dumps(pod(i))
                    began = time.perf_counter()
                    r = await client.post("/api/v1/namespaces/default/pods", content=body)
                    latencies.append(time.perf_counter() - began)
                    assert r.status_code == 201, r.text
                    assert r.headers["content-type"] == (PROTO if protobuf else "application/json")

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            return latencies, time.perf_counter() - began
    finally:
        await server.stop()


def codec_costs() -> None:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "default"}})
    sample = store.create("pods", pod(1))            # as stored: defaults filled in, as answered
    data = codec.encode(sample)
    text = orjson.dumps(sample)
    for label, work in (("protobuf decode", lambda: codec.decode(data)),
                        ("protobuf encode", lambda: codec.encode(sample)),
                        ("json decode (orjson)", lambda: orjson.loads(text)),
                        ("json encode (orjson)", lambda: orjson.dumps(sample))):
        samples = []
        for _ in range(CODEC_ROUNDS):
            began = time.perf_counter()
            work()
            samples.append((time.perf_counter() - began) * 1e6)
        summary(f"{label} of a stored pod ({len(data)} B protobuf, {len(text)} B JSON)", samples,
                unit="us")


async def run() -> None:
    results: dict[bool, float] = {}
    for protobuf in (False, True, False, True):
        latencies, seconds = await creates(protobuf)
        name = "protobuf" if protobuf else "json"
        summary(f"create latency, {name}", latencies)
        results[protobuf] = max(results.get(protobuf, 0.0), CREATES / seconds)
        rate(f"pod creates, {name}", CREATES, seconds,
             anchor=results.get(False) if protobuf else None, anchor_name="json (best run)")
    print(f"best protobuf/json create rate: {results[True] / results[False]:.2f}x")
    codec_costs()


def main() -> None:
    uvloop.run(run())
