"""The job service on PostgreSQL: the same records, idempotency and watch-driven status as on
SQLite (JSON vols, the unique indexes, the writer's executemany updates)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.jobs.support import SEED_BODY, bay, fast_template, tenant, wait_job
from tests.pg import fresh_database
from tests.stack import run_stack

pytestmark = pytest.mark.postgres


async def test_jobs_on_postgres(tmp_path: Path) -> None:
    async with fresh_database() as url, run_stack(tmp_path, database_url=url) as stack, \
            stack.client() as c:
        b = await bay(stack, c)
        await tenant(c, b["uuid"], "pgtenant", fast_template("0", exit_code="2", backoffLimit=0),
                     claims=("gluster-exam", "nfs-exam"))
        body = {"tenant": "pgtenant", **SEED_BODY}
        answers = await asyncio.gather(*(c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "pg"})
                                         for _ in range(4)))
        assert {r.status_code for r in answers} == {201}
        (uuid,) = {r.json()["uuid"] for r in answers}
        done = await wait_job(c, uuid)
        assert done["status"] == "Failed" and done["exit_code"] == 2 and done["vols"] == SEED_BODY["vols"]
        await c.put("/v1/tenants/pgtenant/template", json=fast_template())
        jobs = [(await c.post("/v1/jobs", json=body)).json() for _ in range(5)]
        for job in jobs:
            assert (await wait_job(c, job["uuid"]))["status"] == "Succeeded"
        listed = (await c.get("/v1/jobs", params={"tenant": "pgtenant", "status": "Succeeded"})).json()
        assert {j["uuid"] for j in listed["jobs"]} == {j["uuid"] for j in jobs}
        clash = await c.post("/v1/jobs", json={**body, "cmd": "other"}, headers={"Idempotency-Key": "pg"})
        assert clash.status_code == 409
        assert (await c.delete("/v1/tenants/pgtenant", params={"force": "true"})).status_code == 204
        assert (await c.get("/v1/jobs")).json()["jobs"] == []
