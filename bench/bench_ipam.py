"""IPAM: allocations/s and per-allocation latency from a /16 at 0%, 50% and 99% fill.

SQLite in a temp dir, and PostgreSQL (a throw-away database) when 127.0.0.1:5432 answers.
Three ways of calling: one allocation per transaction (what a controller does per pod),
many allocations in one transaction, and batches of 64 (``allocate_addresses``). The
99%/0% ratio shows whether cost grows with fill (it must not: no scan of used addresses).
Anchors: Kuryr ~3 s per pod with port pools; Whereabouts > 4 min for 128 x 16 pods.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bayport.db.base import Base, make_engine, make_sessionmaker
from bayport.db.network import (
    AddressLeaseRow,
    FreeAddressRow,
    IPAllocationRow,
    NetworkRow,
    PortRow,
    SubnetRow,
)
from bayport.network import ipam
from bench.stats import percentile

PG_SERVER = "postgres@127.0.0.1:5432"
TABLES = [cast(Table, m.__table__) for m in (
    NetworkRow, SubnetRow, PortRow, IPAllocationRow, FreeAddressRow, AddressLeaseRow)]
SAMPLES = 512          # per mode and fill level; 99% of a /16 leaves 655 addresses
BATCH = 64
CONCURRENCY = 16
FILL_CHUNK = 2000
KURYR_PER_POD_S = 3.0
WHEREABOUTS_PER_S = 128 * 16 / 240.0


@asynccontextmanager
async def databases() -> AsyncIterator[list[tuple[str, str]]]:
    with tempfile.TemporaryDirectory(prefix="bench-ipam-") as tmp:
        urls = [("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'ipam.db'}")]
        name = f"bayport_bench_{secrets.token_hex(6)}"
        admin = None
        try:
            admin = await asyncpg.connect(f"postgresql://{PG_SERVER}/test", timeout=3)
            await admin.execute(f'CREATE DATABASE "{name}"')
            urls.append(("postgresql", f"postgresql+asyncpg://{PG_SERVER}/{name}"))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            print(f"PostgreSQL skipped: {exc}")
        try:
            yield urls
        finally:
            if admin is not None:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()


Measured = tuple[list[float], int, float]   # per-allocation latencies, addresses, wall seconds


async def timed_single(sessions: async_sessionmaker[AsyncSession], subnet_id: str) -> Measured:
    samples = []
    wall = time.perf_counter()
    for _ in range(SAMPLES):
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            await ipam.allocate_address(session, subnet_id)
        samples.append(time.perf_counter() - started)
    return samples, SAMPLES, time.perf_counter() - wall


async def timed_concurrent(sessions: async_sessionmaker[AsyncSession], subnet_id: str) -> Measured:
    """Many pods at once, as a controller handles them: commits overlap (group commit)."""
    samples: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            async with sessions() as session, session.begin():
                await ipam.allocate_address(session, subnet_id)
            samples.append(time.perf_counter() - started)

    wall = time.perf_counter()
    await asyncio.gather(*(worker(SAMPLES // CONCURRENCY) for _ in range(CONCURRENCY)))
    return samples, len(samples), time.perf_counter() - wall


async def timed_one_transaction(sessions: async_sessionmaker[AsyncSession], subnet_id: str) -> Measured:
    samples = []
    wall = time.perf_counter()
    async with sessions() as session, session.begin():
        for _ in range(SAMPLES):
            started = time.perf_counter()
            await ipam.allocate_address(session, subnet_id)
            samples.append(time.perf_counter() - started)
    return samples, SAMPLES, time.perf_counter() - wall


async def timed_batches(sessions: async_sessionmaker[AsyncSession], subnet_id: str) -> Measured:
    samples = []
    wall = time.perf_counter()
    for _ in range(SAMPLES // BATCH):
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            await ipam.allocate_addresses(session, subnet_id, BATCH)
        samples.append((time.perf_counter() - started) / BATCH)
    return samples, SAMPLES // BATCH * BATCH, time.perf_counter() - wall


async def release_since(sessions: async_sessionmaker[AsyncSession], subnet_id: str,
                        before: set[str]) -> None:
    """Free what the measurement took, so the fill level stays where it was."""
    async with sessions() as session, session.begin():
        now = set((await session.execute(select(IPAllocationRow.ip_address).where(
            IPAllocationRow.subnet_id == subnet_id))).scalars())
        for address in now - before:
            await ipam.release_address(session, subnet_id, address)


async def allocated(sessions: async_sessionmaker[AsyncSession], subnet_id: str) -> set[str]:
    async with sessions() as session:
        return set((await session.execute(select(IPAllocationRow.ip_address).where(
            IPAllocationRow.subnet_id == subnet_id))).scalars())


async def fill_to(sessions: async_sessionmaker[AsyncSession], subnet_id: str, target: int,
                  current: int) -> None:
    while current < target:
        count = min(FILL_CHUNK, target - current)
        async with sessions() as session, session.begin():
            await ipam.allocate_addresses(session, subnet_id, count)
        current += count


def line(label: str, measured: Measured) -> dict[str, float]:
    samples, addresses, wall = measured
    median = statistics.median(samples)
    p99 = percentile(samples, 99)
    rate = addresses / wall
    print(f"  {label:<34} {rate:>9,.0f} alloc/s   median {median * 1e3:6.3f} ms   p99 {p99 * 1e3:6.3f} ms")
    return {"rate": rate, "median": median}


MODES = (
    ("one allocation per transaction", timed_single),
    (f"same, {CONCURRENCY} concurrent tasks", timed_concurrent),
    ("allocations in one transaction", timed_one_transaction),
    (f"batches of {BATCH}", timed_batches),
)


async def bench_backend(kind: str, url: str) -> None:
    engine: AsyncEngine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: Base.metadata.create_all(sync, tables=TABLES))
        sessions = make_sessionmaker(engine)
        async with sessions() as session, session.begin():
            _, subnet = await ipam.ensure_namespace_network(session, "bench-bay", "bench", "bench",
                                                            pod_pool="10.0.0.0/8", prefix=16)
        print(f"\n{kind}: subnet {subnet.cidr}, {subnet.pool_size:,} addresses")
        results: dict[tuple[str, int], dict[str, float]] = {}
        current = 0
        fill_seconds = 0.0
        for level in (0, 50, 99):
            target = subnet.pool_size * level // 100
            started = time.perf_counter()
            await fill_to(sessions, subnet.id, target, current)
            fill_seconds += time.perf_counter() - started
            current = target
            async with sessions() as session:
                cursor = (await session.execute(select(SubnetRow.next_index).where(
                    SubnetRow.id == subnet.id))).scalar_one()
            source = ("the free list (cursor spent)" if cursor >= subnet.pool_size
                      else f"the cursor at {cursor:,}")
            print(f" at {level}% fill ({target:,} allocated; new addresses come from {source}):")
            for mode, run in MODES:
                before = await allocated(sessions, subnet.id)
                results[(mode, level)] = line(mode, await run(sessions, subnet.id))
                await release_since(sessions, subnet.id, before)
        filled = subnet.pool_size * 99 // 100
        print(f" filling to 99% in chunks of {FILL_CHUNK}: {filled / fill_seconds:,.0f} alloc/s")
        for mode, _ in MODES:
            ratio = results[(mode, 99)]["median"] / results[(mode, 0)]["median"]
            print(f"  ratio 99%/0% median ({mode}): {ratio:.2f}")
        await bench_ports(sessions)
    finally:
        await engine.dispose()


async def bench_ports(sessions: async_sessionmaker[AsyncSession]) -> None:
    samples: list[float] = []

    async def worker(first: int, count: int) -> None:
        for i in range(first, first + count):
            started = time.perf_counter()
            async with sessions() as session, session.begin():
                await ipam.create_port(session, bay_uuid="ports-bay", project_id="bench",
                                       namespace="default", name=f"pod-{i}", device_id=f"uid-{i}",
                                       pod_pool="10.0.0.0/8", prefix=16)
            samples.append(time.perf_counter() - started)

    wall = time.perf_counter()
    await asyncio.gather(*(worker(k * 100, 100) for k in range(CONCURRENCY)))
    stats = line(f"create_port, {CONCURRENCY} tasks", (samples, len(samples),
                                                       time.perf_counter() - wall))
    per_pod = 1 / stats["rate"]
    print(f"  vs Kuryr ~{KURYR_PER_POD_S:.0f} s per pod: {KURYR_PER_POD_S / per_pod:,.0f}x faster; "
          f"vs Whereabouts < {WHEREABOUTS_PER_S:.1f} pods/s: "
          f"{stats['rate'] / WHEREABOUTS_PER_S:,.0f}x")


async def main() -> None:
    async with databases() as urls:
        for kind, url in urls:
            await bench_backend(kind, url)
