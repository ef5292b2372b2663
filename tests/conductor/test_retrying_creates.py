"""Bays whose create keeps retrying hold no database connection, and a delete pre-empts them.

Before: each retrying create kept its session's transaction open for its ``create_timeout``
(member-settable, up to a week). Forty of them emptied PostgreSQL's pool (10 + 20): other
projects' requests got 504 and heartbeats failed. A delete of such a bay answered 204 and then
waited for the create's deadline.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.pg import fresh_database
from tests.stack import Stack, run_stack

pytestmark = pytest.mark.postgres

RETRYING = 40


def unreachable_kubeconfig() -> str:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
           "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    return base64.b64encode(yaml.safe_dump(doc).encode()).decode()


async def idle_in_transaction(url: str) -> int:
    database = make_url(url).database
    conn = await asyncpg.connect(str(make_url(url).set(drivername="postgresql")))
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
            "AND state = 'idle in transaction'", database))
    finally:
        await conn.close()


async def member_client(stack: Stack, project: str) -> httpx.AsyncClient:
    return stack.client(token=await stack.token(project))


async def test_retrying_creates_hold_no_connection_and_yield_to_delete(tmp_path: Path) -> None:
    async with fresh_database() as url, run_stack(
            tmp_path, database_url=url, cluster_allowed_networks=["127.0.0.0/8"],
            quota_defaults={"Operation": RETRYING}) as stack:   # past the default quota
        async with await member_client(stack, "flooder") as c:
            await stack.baymodel(c, "unreachable", driver="kubeconfig",
                                 labels={"kubeconfig": unreachable_kubeconfig()})
            bays = await asyncio.gather(*(stack.bay(c, "unreachable", name=f"b{i}", wait=False)
                                          for i in range(RETRYING)))
            await asyncio.sleep(2.0)  # every create has failed once and waits to retry
            statuses = {(await c.get(f"/v1/bays/{b['uuid']}")).json()["status"] for b in bays}
            assert statuses == {"CREATE_IN_PROGRESS"}
            assert await idle_in_transaction(url) == 0

        async with await member_client(stack, "victim") as v:
            began = time.monotonic()
            await stack.baymodel(v, "k8s", labels={"runtime": "simulated"})
            listed = await v.get("/v1/bays")
            assert listed.status_code == 200 and listed.json()["bays"] == []
            assert time.monotonic() - began < 2.0

        async with await member_client(stack, "flooder") as c:
            began = time.monotonic()
            resp = await c.delete(f"/v1/bays/{bays[0]['uuid']}")
            assert resp.status_code == 204
            await stack.wait_bay(c, bays[0]["uuid"], gone=True, timeout=10)
            assert time.monotonic() - began < 4.0, "the delete waited for the create's deadline"
            # The others keep retrying, untouched by their neighbour's delete.
            assert (await c.get(f"/v1/bays/{bays[1]['uuid']}")).json()["status"] == \
                "CREATE_IN_PROGRESS"
