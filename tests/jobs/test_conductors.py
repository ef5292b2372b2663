"""Two conductors on one bus and one database: job-service requests for an embedded bay that land
on the conductor not hosting it are forwarded to the host, which alone watches the bay's jobs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bayport.api.app import CONDUCTOR_TOPIC
from bayport.cli import runner
from bayport.conductor.jobs import operations
from bayport.conductor.service import host_topic
from bayport.db.models import BayRow
from bayport.rpc import RPCClient
from tests.jobs.support import SEED_BODY, bay, fast_template, tenant, wait_job
from tests.stack import run_stack


async def test_requests_reach_the_hosting_conductor(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                    ) -> None:
    caplog.set_level(logging.INFO, logger="bayport.conductor.routing")
    async with run_stack(tmp_path) as stack:
        second = await runner.start_conductor(stack.settings, stack.conductor.transport)
        try:
            async with stack.client() as c:
                b = await bay(stack, c)
                async with stack.state.sessionmaker() as session:
                    row = await session.get(BayRow, b["uuid"])
                    assert row is not None and row.host is not None
                conductors = {stack.conductor.id: stack.conductor, second.id: second}
                other = next(cid for cid in conductors if cid != row.host)
                stack.state.conductor = RPCClient(stack.conductor.transport, host_topic(other),
                                                  timeout=stack.settings.rpc_timeout)
                await tenant(c, b["uuid"], "fwd", fast_template("0", ttlSecondsAfterFinished=300),
                             claims=("gluster-exam", "nfs-exam"))
                assert b["uuid"] in operations(conductors[row.host]).watches.bays
                assert b["uuid"] not in operations(conductors[other]).watches.bays
                job = (await c.post("/v1/jobs", json={"tenant": "fwd", **SEED_BODY})).json()
                assert (await wait_job(c, job["uuid"]))["status"] == "Succeeded"
                logs = await c.get(f"/v1/jobs/{job['uuid']}/logs")
                assert logs.status_code == 200 and "exited with code 0" in logs.text
                assert (await c.delete(f"/v1/jobs/{job['uuid']}")).status_code == 204
                assert (await c.delete("/v1/tenants/fwd/volumes/nfs-exam")).status_code == 204
                assert (await c.delete("/v1/tenants/fwd")).status_code == 204
        finally:
            stack.state.conductor = RPCClient(stack.conductor.transport, CONDUCTOR_TOPIC,
                                              timeout=stack.settings.rpc_timeout)
            await second.stop()
    forwarded = {r.getMessage().split()[2] for r in caplog.records if "forwarding" in r.getMessage()}
    assert {"tenant_create", "volume_create", "job_create", "job_logs", "job_delete", "volume_delete",
            "tenant_delete"} <= forwarded
