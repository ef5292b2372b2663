"""The churn figure in small: 300 pods created and deleted over 5 namespaces (every fifth
deleted before it can run) with the controller killed and restarted once meanwhile, on a
whole Bayport. No live pod ever shows an address another live pod holds, and once the pods
are gone IPAM holds nothing: no port, no address (bench/bench_pod_network.py runs 10,000).
Once on SQLite (one port transaction at a time) and once on PostgreSQL (eight at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.bench_pod_network import ChurnResult, churn

from tests.kube.workload_helpers import cluster
from tests.network.controller_support import controller, make_namespace, networked_bay
from tests.pg import fresh_database
from tests.stack import Stack, run_stack


async def _churn(stack: Stack, pods: int) -> ChurnResult:
    async with stack.client() as c:
        bay = await networked_bay(stack, c, node_count=2)
    ctl = controller(stack)
    namespaces = [f"churn-{i}" for i in range(5)]

    async def restart() -> None:
        await ctl.stop()
        await asyncio.sleep(0.2)
        await ctl.start()

    async def settle() -> None:
        await ctl.settled(bay["uuid"])

    async with cluster(stack, bay["uuid"]) as k8s:
        for name in namespaces:
            await make_namespace(k8s, name)
        return await churn(k8s, stack.state.sessionmaker, bay["uuid"], pods=pods, namespaces=namespaces,
                           restarts=1, concurrency=16, restart=restart, settle=settle)


async def test_churn_with_a_controller_restart_ends_without_duplicates_or_leaks(stack: Stack) -> None:
    result = await _churn(stack, 300)
    assert result.created == 300 and result.restarts == 1 and result.deleted_at_once == 60
    assert result.duplicates == 0
    assert result.leaked_ports == 0 and result.leaked_addresses == 0


async def test_churn_on_postgresql(tmp_path: Path) -> None:
    async with fresh_database() as url, run_stack(tmp_path, database_url=url) as stack:
        result = await _churn(stack, 150)
    assert result.created == 150 and result.restarts == 1
    assert result.duplicates == 0
    assert result.leaked_ports == 0 and result.leaked_addresses == 0
