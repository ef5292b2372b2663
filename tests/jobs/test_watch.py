"""The watch reconciles what a request left half done: a Job created whose row was never
updated (the conductor died after the create), a row whose Job was never created, and a Job
that vanished while nobody watched. A later, partial view never erases a richer one."""

from __future__ import annotations

from datetime import timedelta

import httpx
from lightkube.resources.batch_v1 import Job

from bayport.conductor.job_watch import NEVER_CREATED
from bayport.conductor.jobs import operations
from bayport.db.base import new_uuid, utcnow
from bayport.db.jobs import JobRow
from bayport.jobs.naming import render_name
from bayport.jobs.template import render_job_manifest
from tests.jobs.support import bay, fast_template, kube, tenant, wait_job
from tests.stack import Stack

TENANT = "watched"


async def _row(stack: Stack, bay_uuid: str, **values: object) -> JobRow:
    uuid = new_uuid()
    row = JobRow(uuid=uuid, name=render_name("job-{}-{}", TENANT, uuid), tenant_id=TENANT,
                 project_id="admin", user_id="admin", bay_uuid=bay_uuid, namespace=TENANT, cmd="true",
                 vols=[], status="Pending", deleted_in_cluster=False, **values)
    async with stack.state.sessionmaker() as session:
        session.add(row)
        await session.commit()
    return row


async def _restart_watch(stack: Stack, bay_uuid: str) -> None:
    watches = operations(stack.conductor).watches
    await watches.stop(bay_uuid)
    watch = await watches.ensure(bay_uuid)
    assert watch is not None
    await watch.wait_synced()
    await watches.writer.flush()


async def _setup(stack: Stack, c: httpx.AsyncClient) -> str:
    b = await bay(stack, c)
    await tenant(c, b["uuid"], TENANT, fast_template())
    return str(b["uuid"])


async def test_a_job_created_behind_an_unfinished_row_is_recorded(stack: Stack) -> None:
    async with stack.client() as c:
        bay_uuid = await _setup(stack, c)
        row = await _row(stack, bay_uuid)
        manifest = render_job_manifest(fast_template(), name=row.name, namespace=TENANT, tenant_id=TENANT,
                                       job_uuid=row.uuid, cmd="true", vols=[])
        k = await kube(stack, bay_uuid)
        created = await k.create(Job.from_dict(manifest))
        done = await wait_job(c, row.uuid)
        assert done["status"] == "Succeeded" and done["exit_code"] == 0
        async with stack.state.sessionmaker() as session:
            stored = await session.get(JobRow, row.uuid)
            assert stored is not None and stored.k8s_uid == created.metadata.uid


async def test_a_row_whose_job_was_never_created_fails_with_the_reason(stack: Stack) -> None:
    async with stack.client() as c:
        bay_uuid = await _setup(stack, c)
        lost = await _row(stack, bay_uuid, created_at=utcnow() - timedelta(hours=1))
        fresh = await _row(stack, bay_uuid)
        await _restart_watch(stack, bay_uuid)
        record = (await c.get(f"/v1/jobs/{lost.uuid}")).json()
        assert record["status"] == "Failed" and record["message"] == NEVER_CREATED
        assert record["finished_at"] is not None and record["deleted_in_cluster"] is False
        # A row just written may belong to a create still in flight: left alone.
        assert (await c.get(f"/v1/jobs/{fresh.uuid}")).json()["status"] == "Pending"


async def test_a_lost_create_is_settled_without_a_restart(stack: Stack) -> None:
    async with stack.client() as c:
        bay_uuid = await _setup(stack, c)
        watches = operations(stack.conductor).watches
        watch = await watches.ensure(bay_uuid)
        assert watch is not None
        await watch.wait_synced()
        lost = await _row(stack, bay_uuid, created_at=utcnow() - timedelta(hours=1))
        await watches.sweep()
        await watches.writer.flush()
        record = (await c.get(f"/v1/jobs/{lost.uuid}")).json()
        assert record["status"] == "Failed" and record["message"] == NEVER_CREATED


async def test_a_job_that_vanished_unwatched_is_settled_on_relist(stack: Stack) -> None:
    async with stack.client() as c:
        bay_uuid = await _setup(stack, c)
        await c.put(f"/v1/tenants/{TENANT}/template", json=fast_template("30"))
        job = (await c.post("/v1/jobs", json={"tenant": TENANT, "cmd": "sleep"})).json()
        await wait_job(c, job["uuid"], ("Running",))
        watches = operations(stack.conductor).watches
        await watches.stop(bay_uuid)
        k = await kube(stack, bay_uuid)
        await k.delete(Job, job["name"], namespace=TENANT)
        await _restart_watch(stack, bay_uuid)
        record = (await c.get(f"/v1/jobs/{job['uuid']}")).json()
        assert record["status"] == "Failed" and record["deleted_in_cluster"] is True
        assert "deleted from the cluster" in record["message"]


async def test_pending_records_fold_instead_of_replacing(stack: Stack) -> None:
    async with stack.client() as c:
        bay_uuid = await _setup(stack, c)
        row = await _row(stack, bay_uuid)
        writer = operations(stack.conductor).watches.writer
        finished = utcnow()
        rich = {"status": "Succeeded", "message": None, "exit_code": 0, "started_at": finished,
                "finished_at": finished, "k8s_uid": "uid-1", "deleted_in_cluster": True}
        late = {"status": "Running", "message": None, "exit_code": 0, "started_at": finished,
                "finished_at": None, "k8s_uid": None, "deleted_in_cluster": False}
        writer.job(row.uuid, rich)
        writer.job(row.uuid, late)  # same tick: both before the writer's next batch
        await writer.flush()
        record = (await c.get(f"/v1/jobs/{row.uuid}")).json()
        assert record["status"] == "Succeeded" and record["deleted_in_cluster"] is True
        writer.job(row.uuid, late)
        await writer.flush()
        assert (await c.get(f"/v1/jobs/{row.uuid}")).json()["status"] == "Succeeded"
