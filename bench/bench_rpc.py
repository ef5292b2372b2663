"""RPC bus: call round-trip latency and cast throughput, in-memory vs RabbitMQ.

Each transport serves a bay_create-shaped call (a versioned object with its
changes) from an RPCServer in this process. Figures: sequential call latency
(median/p99), calls/s with 32 concurrent callers, casts/s confirmed by the broker
and handled by the server. RabbitMQ is skipped with a note when unreachable.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

from bayport.objects.base import BayportObject
from bayport.objects.context import RequestContext
from bayport.rpc import RPCClient, RPCServer, Transport, get_transport
from bench.stats import rate, summary

AMQP_URL = os.environ.get("BAYPORT_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class BenchBay(BayportObject):
    OBJ_NAME = "BenchBay"

    name: str
    baymodel_id: str
    node_count: int = 1
    project_id: str = ""
    user_id: str = ""
    discovery_url: str | None = None


class BenchEndpoint:
    RPC_API_VERSION = "1.0"

    def __init__(self) -> None:
        self.casts = 0
        self.all_casts_handled = asyncio.Event()
        self.expected_casts = 0

    async def bay_create(self, ctx: RequestContext, bay: BenchBay,
                         bay_create_timeout: int | None = None) -> BenchBay:
        bay.discovery_url = "https://discovery.invalid/"
        return bay

    async def bay_status_changed(self, ctx: RequestContext, bay_uuid: str, status: str) -> None:
        self.casts += 1
        if self.casts >= self.expected_casts:
            self.all_casts_handled.set()


def _reachable(url: str) -> bool:
    from yarl import URL

    parsed = URL(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5672), timeout=1.0):
            return True
    except OSError:
        return False


async def _run(label: str, transport: Transport, *, calls: int, concurrent_calls: int,
               casts: int, anchors: dict[str, float]) -> None:
    topic = f"bench.rpc.{uuid.uuid4().hex[:8]}"
    endpoint = BenchEndpoint()
    server = RPCServer(transport, topic, endpoint, concurrency=32)
    await server.start()
    client = RPCClient(transport, topic, timeout=30)
    ctx = RequestContext(user_id="bench", project_id="bench", roles=["member"])
    bay = BenchBay(name="testbay", baymodel_id=str(uuid.uuid4()), node_count=1,
                   project_id="bench", user_id="bench")
    try:
        for _ in range(50):
            await client.call(ctx, "bay_create", bay=bay, bay_create_timeout=None)

        latencies: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            await client.call(ctx, "bay_create", bay=bay, bay_create_timeout=None)
            latencies.append(time.perf_counter() - started)
        summary(f"{label} call round trip (sequential)", latencies)
        median = sorted(latencies)[len(latencies) // 2]
        memory_median = anchors.setdefault("median", median)
        if memory_median != median:
            print(f"    median is {median / memory_median:.0f}x the memory median")

        async def caller(count: int) -> None:
            for _ in range(count):
                await client.call(ctx, "bay_create", bay=bay, bay_create_timeout=None)

        started = time.perf_counter()
        await asyncio.gather(*(caller(concurrent_calls // 32) for _ in range(32)))
        _line(label, "calls (32 concurrent callers)", concurrent_calls,
                            time.perf_counter() - started, anchors)

        endpoint.expected_casts = casts
        in_flight = asyncio.Semaphore(64)

        async def cast_one(n: int) -> None:
            async with in_flight:
                await client.cast(ctx, "bay_status_changed", bay_uuid=str(n), status="CREATE_COMPLETE")

        started = time.perf_counter()
        await asyncio.gather(*(cast_one(n) for n in range(casts)))
        confirmed = time.perf_counter() - started
        await asyncio.wait_for(endpoint.all_casts_handled.wait(), 60)
        handled = time.perf_counter() - started
        _line(label, "casts accepted by the bus (broker-confirmed)", casts, confirmed, anchors)
        _line(label, "casts handled by the server", casts, handled, anchors)
    finally:
        await server.stop(grace=5)
        await transport.delete_topic(topic)


def _line(label: str, what: str, count: int, seconds: float, anchors: dict[str, float]) -> float:
    rate(f"{label} {what}", count, seconds)
    per_s = count / seconds
    memory = anchors.setdefault(what, per_s)
    if memory != per_s:
        print(f"    memory is {memory / per_s:.1f}x the {label} rate")
    return per_s


async def main() -> None:
    anchors: dict[str, float] = {}
    async with get_transport("memory://") as memory:
        await _run("memory", memory, calls=2000, concurrent_calls=6400, casts=20000, anchors=anchors)
    if not _reachable(AMQP_URL):
        print(f"RabbitMQ skipped: not reachable at {AMQP_URL}")
        return
    async with get_transport(AMQP_URL) as amqp:
        await _run("rabbitmq", amqp, calls=1000, concurrent_calls=3200, casts=4000, anchors=anchors)


if __name__ == "__main__":
    asyncio.run(main())
