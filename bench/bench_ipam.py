"""IPAM: allocations/s and per-allocation latency from a /16 at 0%, 50% and 99% fill.

SQLite in a temp dir, and PostgreSQL (a throw-away database) when 127.0.0.1:5432 answers.
Four ways of calling: one allocation per transaction (what a controller does per pod;
bound by the database's commit, an fsync on PostgreSQL), the same from 16 concurrent
tasks, many allocations in one transaction, and batches of 64 (``allocate_addresses``).
Each level takes fresh addresses from the cursor; a last round at 99% takes reused ones
from the free list. The 99%/0% ratios show whether cost grows with fill (it must not:
nothing scans the used addresses). Anchors: Kuryr ~3 s per pod with port pools;
Whereabouts > 4 min for 128 x 16 pods."""

from __future__ import annotations

import asyncio
import random
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
# Allocations per mode and level: 3 x 160 + 2 x 64 fit in the 655 addresses that 99%
# of a /16 leaves free, so every level measures fresh addresses from the cursor.
SAMPLES = 160
BATCH = 64
BATCHES = 2
CONCURRENCY = 16
REUSED = 640
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
    for _ in range(BATCHES):
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            await ipam.allocate_addresses(session, subnet_id, BATCH)
        samples.append((time.perf_counter() - started) / BATCH)
    return samples, BATCHES * BATCH, time.perf_counter() - wall


async def release_random(sessions: async_sessionmaker[AsyncSession], subnet_id: str,
                         count: int) -> None:
    async with sessions() as session, session.begin():
        used = list((await session.execute(select(IPAllocationRow.ip_address).where(
            IPAllocationRow.subnet_id == subnet_id))).scalars())
        for address in random.Random(7).sample(used, count):
            await ipam.release_address(session, subnet_id, address)


async def fill_to(sessions: async_sessionmaker[AsyncSession], subnet_id: str, target: int,
                  current: int) -> int:
    while current < target:
        count = min(FILL_CHUNK, target - current)
        async with sessions() as session, session.begin():
            await ipam.allocate_addresses(session, subnet_id, count)
        current += count
    return current


def line(label: str, measured: Measured, unit: str = "alloc/s") -> dict[str, float]:
    samples, addresses, wall = measured
    median = statistics.median(samples)
    p99 = percentile(samples, 99)
    rate = addresses / wall
    print(f"  {label:<34} {rate:>9,.0f} {unit}   median {median * 1e3:6.3f} ms   p99 {p99 * 1e3:6.3f} ms")
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
        results: dict[tuple[str, str], dict[str, float]] = {}
        current = 0
        fill_seconds = 0.0
        for level in (0, 50, 99):
            started = time.perf_counter()
            current = await fill_to(sessions, subnet.id, subnet.pool_size * level // 100, current)
            fill_seconds += time.perf_counter() - started
            print(f" at {level}% fill ({current:,} allocated), fresh addresses from the cursor:")
            for mode, run in MODES:
                measured = await run(sessions, subnet.id)
                current += measured[1]
                results[(mode, f"{level}%")] = line(mode, measured)
        print(f" filling in chunks of {FILL_CHUNK}: {current / fill_seconds:,.0f} alloc/s")

        # Spend the cursor, then free random addresses: everything now comes from the free list.
        await fill_to(sessions, subnet.id, subnet.pool_size, current)
        await release_random(sessions, subnet.id, REUSED)
        print(f" at 99% fill ({subnet.pool_size - REUSED:,} allocated), "
              f"reused addresses from the free list:")
        for mode, run in MODES:
            results[(mode, "free")] = line(mode, await run(sessions, subnet.id))
        for mode, _ in MODES:
            base = results[(mode, "0%")]["median"]
            print(f"  ratio of medians ({mode}): cursor 99%/0% "
                  f"{results[(mode, '99%')]['median'] / base:.2f}, "
                  f"free list 99%/cursor 0% {results[(mode, 'free')]['median'] / base:.2f}")
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
                                                       time.perf_counter() - wall), unit="ports/s")
    per_pod = 1 / stats["rate"]
    print(f"  vs Kuryr ~{KURYR_PER_POD_S:.0f} s per pod: {KURYR_PER_POD_S / per_pod:,.0f}x faster; "
          f"vs Whereabouts < {WHEREABOUTS_PER_S:.1f} pods/s: "
          f"{stats['rate'] / WHEREABOUTS_PER_S:,.0f}x")


async def main() -> None:
    async with databases() as urls:
        for kind, url in urls:
            await bench_backend(kind, url)
