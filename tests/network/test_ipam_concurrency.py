"""Two allocators on one database never hand out one address twice: two engines in
one process (two asyncio tasks) and two OS processes, each allocating 1,000 addresses,
releasing a quarter and then racing to exhaustion. At the end the addresses held are
disjoint and cover the pool exactly, so nothing leaked and nothing was doubled.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bayport.db.network import IPAllocationRow
from bayport.network import ipam
from bayport.network.ipam import SubnetRecord
from tests.conftest import require
from tests.network.ipam_support import (
    BACKENDS,
    count_rows,
    database_url,
    ipam_engine,
    postgres_reachable,
    sessions,
)

BAY = "5d12f6fd-a196-4bf0-ae4c-1f639a523a52"
PER_ALLOCATOR = 1000
REPO = Path(__file__).resolve().parents[2]


async def make_subnet(engine: AsyncEngine) -> SubnetRecord:
    async with sessions(engine)() as session, session.begin():
        _, subnet = await ipam.ensure_namespace_network(session, BAY, "p", "default",
                                                        pod_pool="10.0.0.0/8", prefix=21)
    assert subnet.pool_size == 2045
    return subnet


def assert_exact_cover(subnet: SubnetRecord, *held: list[str]) -> None:
    together = [a for addresses in held for a in addresses]
    assert len(together) == len(set(together)), "an address was handed out twice"
    net = ipaddress.ip_network(subnet.cidr)
    pool = {str(a) for a in net.hosts()} - {subnet.gateway_ip}
    assert set(together) == pool
    # The allocators really ran side by side: their blocks interleave across the pool.
    owner = {a: i for i, addresses in enumerate(held) for a in addresses}
    ordered = sorted(owner, key=lambda a: int(ipaddress.ip_address(a)))
    assert sum(owner[x] != owner[y] for x, y in itertools.pairwise(ordered)) >= 4


async def churn(engine: AsyncEngine, subnet_id: str, start: asyncio.Event) -> list[str]:
    await start.wait()
    held: list[str] = []
    for _ in range(PER_ALLOCATOR):
        async with sessions(engine)() as session, session.begin():
            held.append(await ipam.allocate_address(session, subnet_id))
    for address in held[::4]:
        async with sessions(engine)() as session, session.begin():
            assert await ipam.release_address(session, subnet_id, address)
    held = [a for i, a in enumerate(held) if i % 4]
    while True:
        try:
            async with sessions(engine)() as session, session.begin():
                held.append(await ipam.allocate_address(session, subnet_id))
        except ipam.SubnetExhausted:
            return held


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_engines_in_two_tasks(backend: str, tmp_path: Path) -> None:
    async with (database_url(backend, tmp_path) as url,
                ipam_engine(url, create=True, holder="controller-a") as first,
                ipam_engine(url, holder="controller-b") as second):
        subnet = await make_subnet(first)
        start = asyncio.Event()
        tasks = [asyncio.create_task(churn(e, subnet.id, start)) for e in (first, second)]
        start.set()
        held_a, held_b = await asyncio.gather(*tasks)

        assert len(held_a) >= PER_ALLOCATOR * 3 // 4 and len(held_b) >= PER_ALLOCATOR * 3 // 4
        assert_exact_cover(subnet, held_a, held_b)
        assert await count_rows(first, IPAllocationRow, subnet_id=subnet.id) == subnet.pool_size


@pytest.mark.postgres
async def test_two_os_processes(tmp_path: Path) -> None:
    require(await postgres_reachable(), "PostgreSQL not reachable")
    async with database_url("postgres", tmp_path) as url, ipam_engine(url, create=True) as engine:
        subnet = await make_subnet(engine)
        workers = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.network.ipam_worker", url, subnet.id, str(PER_ALLOCATOR),
            cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            for _ in range(2)]
        try:
            for worker in workers:
                assert worker.stdout is not None
                assert (await asyncio.wait_for(worker.stdout.readline(), 30)).strip() == b"ready"
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            outputs = [await asyncio.wait_for(w.communicate(), 90) for w in workers]
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        assert [w.returncode for w in workers] == [0, 0]
        held = [json.loads(out.decode().splitlines()[-1]) for out, _ in outputs]

        assert all(len(h) >= PER_ALLOCATOR * 3 // 4 for h in held)
        assert_exact_cover(subnet, *held)
        assert await count_rows(engine, IPAllocationRow, subnet_id=subnet.id) == subnet.pool_size
