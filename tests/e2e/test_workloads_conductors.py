"""Two conductors on one bus and one database (SQLite, and PostgreSQL when it is there): a request
for a pod in an embedded bay that lands on the conductor not hosting the bay is forwarded to the
one that does; the watch runs on the host; the rows are the same either way."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bayport.api.app import CONDUCTOR_TOPIC
from bayport.cli import runner
from bayport.conductor.service import ConductorService, host_topic
from bayport.conductor.workloads import operations
from bayport.db.models import BayRow
from bayport.rpc import RPCClient
from tests.kube import seed
from tests.kube.workload_helpers import manifest, ready_bay, wait_row
from tests.pg import fresh_database
from tests.stack import Stack, run_stack


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    async with fresh_database() as url:
        yield url


async def test_requests_reach_the_hosting_conductor(database_url: str | None, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    overrides: dict[str, Any] = {"database_url": database_url} if database_url else {}
    caplog.set_level(logging.INFO, logger="bayport.conductor.routing")
    async with run_stack(tmp_path, **overrides) as stack:
        second = await runner.start_conductor(stack.settings, stack.conductor.transport)
        try:
            await _scenario(stack, second)
        finally:
            await second.stop()
    forwarded = [r.getMessage().split()[2] for r in caplog.records if "forwarding" in r.getMessage()]
    assert {"pod_create", "rc_create", "rc_update", "pod_delete", "rc_delete"} <= set(forwarded)


async def _scenario(stack: Stack, second: ConductorService) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c, node_count=2)
        async with stack.state.sessionmaker() as session:
            row = await session.get(BayRow, bay["uuid"])
            assert row is not None
            host = row.host
        conductors = {stack.conductor.id: stack.conductor, second.id: second}
        assert host in conductors
        other = next(cid for cid in conductors if cid != host)
        assert bay["uuid"] in operations(conductors[host]).watches.bays
        assert bay["uuid"] not in operations(conductors[other]).watches.bays
        # Point the API at the conductor that does not host the bay: everything must be forwarded.
        stack.state.conductor = RPCClient(stack.conductor.transport, host_topic(other),
                                          timeout=stack.settings.rpc_timeout)
        try:
            pod = await c.post("/v1/pods", json={"bay_uuid": "testbay",
                                                 "manifest": seed.REDIS_MASTER_V1BETA3})
            assert pod.status_code == 201, pod.text
            await wait_row(c, "pods", pod.json()["uuid"], lambda p: p["status"] == "Running")
            rc = await c.post("/v1/rcs", json={"bay_uuid": "testbay",
                                               "manifest": manifest("ReplicationController", "r")})
            assert rc.status_code == 201, rc.text
            scaled = await c.patch(f"/v1/rcs/{rc.json()['uuid']}",
                                   json=[{"op": "replace", "path": "/replicas", "value": 3}])
            assert scaled.status_code == 200 and scaled.json()["replicas"] == 3, scaled.text
            await wait_row(c, "rcs", rc.json()["uuid"], lambda r: r["ready_replicas"] == 3)
            bad = await c.post("/v1/pods", json={"bay_uuid": "testbay",
                                                 "manifest": manifest("Pod", "p", namespace="nope")})
            assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "metadata.namespace"
            assert (await c.delete(f"/v1/pods/{pod.json()['uuid']}")).status_code == 204
            assert (await c.delete(f"/v1/rcs/{rc.json()['uuid']}")).status_code == 204
            assert (await c.get("/v1/pods")).json()["pods"] == []
        finally:
            stack.state.conductor = RPCClient(stack.conductor.transport, CONDUCTOR_TOPIC,
                                              timeout=stack.settings.rpc_timeout)
