"""/v1/jobs end to end on an embedded bay: the seed body runs as a batch/v1 Job in the tenant's
namespace with its claims mounted, the answer is the record, and the record follows the cluster."""

from __future__ import annotations

from tests.jobs.support import SEED_BODY, bay, fast_template, tenant, wait_job
from tests.stack import Stack


async def test_seed_body_runs_and_record_follows(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        t = await tenant(c, b["name"], "5c6e1bd2a7f0e4a1b2c3d4e5", fast_template(),
                         claims=("gluster-exam", "nfs-exam"))
        resp = await c.post("/v1/jobs", json={"tenant": t["id"], **SEED_BODY})
        assert resp.status_code == 201, resp.text
        job = resp.json()
        assert job["status"] == "Pending" and job["tenant"] == t["id"]
        assert job["name"].startswith(f"job-{t['id']}-") and job["namespace"] == t["id"]
        done = await wait_job(c, job["uuid"])
        assert done["status"] == "Succeeded", done
        assert done["exit_code"] == 0
        assert done["started_at"] and done["finished_at"]
