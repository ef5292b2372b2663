"""/v1/jobs end to end on an embedded bay: the seed body runs as a batch/v1 Job in the tenant's
namespace with its claims mounted, the answer is the record, the record follows the cluster
(and outlives the Job), bad requests create nothing, and an Idempotency-Key makes retries safe."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod

from tests.jobs.support import SEED_BODY, bay, fast_template, kube, tenant, wait_job
from tests.stack import Stack

TENANT = "5c6e1bd2a7f0e4a1b2c3d4e5"
RECORD = {"uuid", "name", "tenant", "namespace", "bay", "cmd", "vols", "status", "created_at", "started_at",
          "finished_at", "exit_code", "message", "deleted_in_cluster"}


async def _setup(stack: Stack, c: httpx.AsyncClient, template: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    b = await bay(stack, c)
    await tenant(c, b["uuid"], TENANT, template or fast_template(), claims=("gluster-exam", "nfs-exam"))
    return b


async def _cluster_jobs(stack: Stack, bay_uuid: str) -> list[Any]:
    k = await kube(stack, bay_uuid)
    return [j async for j in k.list(Job, namespace="*")]


async def test_seed_body_runs_and_the_record_outlives_the_job(stack: Stack) -> None:
    async with stack.client() as c:
        b = await _setup(stack, c)
        resp = await c.post("/v1/jobs", json={"tenant": TENANT, **SEED_BODY})
        assert resp.status_code == 201, resp.text
        job = resp.json()
        assert set(job) == RECORD
        assert job["status"] == "Pending" and job["tenant"] == TENANT and job["bay"] == b["uuid"]
        assert job["name"].startswith(f"job-{TENANT}-") and job["namespace"] == TENANT
        assert job["cmd"] == SEED_BODY["cmd"] and job["vols"] == SEED_BODY["vols"]
        done = await wait_job(c, job["uuid"])
        assert done["status"] == "Succeeded" and done["exit_code"] == 0 and done["message"] is None
        assert done["created_at"] <= done["started_at"] <= done["finished_at"]
        # ttlSecondsAfterFinished: 0 removes the Job; the record stays, final.
        for _ in range(200):
            if (await c.get(f"/v1/jobs/{job['uuid']}")).json()["deleted_in_cluster"]:
                break
            await asyncio.sleep(0.01)
        final = (await c.get(f"/v1/jobs/{job['uuid']}")).json()
        assert final["deleted_in_cluster"] is True and final["status"] == "Succeeded"
        assert await _cluster_jobs(stack, b["uuid"]) == []


async def test_the_job_in_the_cluster_is_the_rendered_template(stack: Stack) -> None:
    async with stack.client() as c:
        b = await _setup(stack, c, fast_template("30"))
        job = (await c.post("/v1/jobs", json={"tenant": TENANT, **SEED_BODY})).json()
        running = await wait_job(c, job["uuid"], ("Running",))
        assert running["started_at"] is not None
        k = await kube(stack, b["uuid"])
        (made,) = await _cluster_jobs(stack, b["uuid"])
        assert made.metadata.name == job["name"] and made.metadata.namespace == TENANT
        assert made.metadata.labels["bayport.io/job-uuid"] == job["uuid"]
        assert made.spec.ttlSecondsAfterFinished == 0
        pod_spec = made.spec.template.spec
        assert pod_spec.restartPolicy == "Never"
        container = pod_spec.containers[0]
        assert container.image == "busybox:1.28.4" and container.imagePullPolicy == "IfNotPresent"
        assert container.args == ["/bin/sh", "-c", "cp -r /src/* /dest/"]
        assert [(v.name, v.persistentVolumeClaim.claimName) for v in pod_spec.volumes] == [
            ("vol-0", "gluster-exam"), ("vol-1", "nfs-exam")]
        assert [(m.name, m.mountPath) for m in container.volumeMounts] == [("vol-0", "/dest"),
                                                                           ("vol-1", "/src")]
        pods = [p async for p in k.list(Pod, namespace=TENANT,
                                        labels={"bayport.io/job-uuid": job["uuid"]})]
        assert len(pods) == 1 and pods[0].status.phase == "Running"


async def test_failure_is_recorded_with_exit_code_and_reason(stack: Stack) -> None:
    async with stack.client() as c:
        await _setup(stack, c, fast_template("0", exit_code="3", backoffLimit=0))
        job = (await c.post("/v1/jobs", json={"tenant": TENANT, "cmd": "exit 3"})).json()
        done = await wait_job(c, job["uuid"])
        assert done["status"] == "Failed" and done["exit_code"] == 3
        assert done["message"].startswith("BackoffLimitExceeded") and "exited with code 3" in done["message"]
        assert done["finished_at"] is not None


async def test_bad_requests_create_nothing(stack: Stack) -> None:
    async with stack.client() as c:
        b = await _setup(stack, c)
        cases = [
            ({"tenant": "nobody", "cmd": "ls"}, "tenant: tenant nobody could not be found"),
            ({"tenant": TENANT, "cmd": " "}, "cmd: must not be empty"),
            ({"tenant": TENANT, "cmd": "ls", "vols": [{"pvc": "missing", "mount": "/m"}]},
             "vols[0].pvc: no PersistentVolumeClaim named 'missing' in tenant"),
            ({"tenant": TENANT, "cmd": "ls", "vols": [{"pvc": "nfs-exam", "mount": "/src"},
                                                      {"pvc": "other", "mount": "/x"}]},
             "vols[1].pvc: no PersistentVolumeClaim named 'other'"),
            ({"tenant": TENANT, "cmd": "ls", "vols": [{"pvc": "nfs-exam", "mount": "src"}]},
             "vols[0].mount: 'src' is not an absolute path"),
            ({"tenant": TENANT, "cmd": "ls", "vols": [{"pvc": "nfs-exam", "mount": "/d"},
                                                      {"pvc": "gluster-exam", "mount": "/d/"}]},
             "vols[1].mount: /d collides with vols[0].mount"),
            ({"tenant": TENANT}, "cmd is required"),
            ({"tenant": TENANT, "cmd": "ls", "vols": [{"pvc": "nfs-exam"}]}, "vols[0].mount is required"),
        ]
        for body, detail in cases:
            resp = await c.post("/v1/jobs", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert detail in resp.json()["errors"][0]["detail"], resp.text
        assert (await c.get("/v1/jobs")).json()["jobs"] == []
        assert await _cluster_jobs(stack, b["uuid"]) == []


async def test_a_claim_made_outside_bayport_counts(stack: Stack) -> None:
    async with stack.client() as c:
        b = await _setup(stack, c)
        k = await kube(stack, b["uuid"])
        await k.create(PersistentVolumeClaim.from_dict(
            {"metadata": {"name": "made-by-kubectl", "namespace": TENANT},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
        resp = await c.post("/v1/jobs", json={"tenant": TENANT, "cmd": "ls",
                                              "vols": [{"pvc": "made-by-kubectl", "mount": "/m"}]})
        assert resp.status_code == 201, resp.text
        assert (await wait_job(c, resp.json()["uuid"]))["status"] == "Succeeded"


async def test_idempotency_key_returns_the_same_job(stack: Stack) -> None:
    async with stack.client() as c:
        b = await _setup(stack, c)
        body = {"tenant": TENANT, **SEED_BODY}
        first = await c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
        again = await c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["uuid"] == first.json()["uuid"]
        racing = await asyncio.gather(*(c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k-2"})
                                        for _ in range(5)))
        assert {r.status_code for r in racing} == {201}
        assert len({r.json()["uuid"] for r in racing}) == 1
        other = await c.post("/v1/jobs", json={**body, "cmd": "rm -rf /dest"},
                             headers={"Idempotency-Key": "k-1"})
        assert other.status_code == 409 and "Idempotency-Key 'k-1'" in other.text
        assert len((await c.get("/v1/jobs")).json()["jobs"]) == 2
        await asyncio.sleep(0.2)
        names = {j.metadata.name for j in await _cluster_jobs(stack, b["uuid"])} | {
            j["name"] for j in (await c.get("/v1/jobs")).json()["jobs"]}
        assert len(names) == 2


async def test_list_filters_and_pages(stack: Stack) -> None:
    async with stack.client() as c:
        await _setup(stack, c)
        ok = [(await c.post("/v1/jobs", json={"tenant": TENANT, "cmd": f"echo {i}"})).json()
              for i in range(3)]
        for job in ok:
            await wait_job(c, job["uuid"])
        await c.put(f"/v1/tenants/{TENANT}/template", json=fast_template("30"))
        slow = (await c.post("/v1/jobs", json={"tenant": TENANT, "cmd": "sleep"})).json()
        await wait_job(c, slow["uuid"], ("Running",))
        page = (await c.get("/v1/jobs", params={"tenant": TENANT, "status": "Succeeded", "limit": 2})).json()
        assert [j["uuid"] for j in page["jobs"]] == [j["uuid"] for j in ok[:2]]
        rest = (await c.get(page["next"])).json()
        assert [j["uuid"] for j in rest["jobs"]] == [ok[2]["uuid"]] and "next" not in rest
        running = (await c.get("/v1/jobs", params={"status": "Running"})).json()["jobs"]
        assert [j["uuid"] for j in running] == [slow["uuid"]]
        assert (await c.get("/v1/jobs", params={"tenant": "other"})).json()["jobs"] == []
        bad = await c.get("/v1/jobs", params={"status": "Done"})
        assert bad.status_code == 400 and "status must be one of" in bad.text


async def test_logs_while_the_pod_exists(stack: Stack) -> None:
    async with stack.client() as c:
        await _setup(stack, c, fast_template("0", ttlSecondsAfterFinished=300))
        job = (await c.post("/v1/jobs", json={"tenant": TENANT, **SEED_BODY})).json()
        await wait_job(c, job["uuid"])
        logs = await c.get(f"/v1/jobs/{job['uuid']}/logs")
        assert logs.status_code == 200, logs.text
        assert logs.headers["content-type"].startswith("text/plain")
        assert "container copy" in logs.text and "exited with code 0" in logs.text
        tail = await c.get(f"/v1/jobs/{job['uuid']}/logs", params={"tail_lines": 1})
        assert tail.text.count("\n") == 1 and "exited" in tail.text
        await c.put(f"/v1/tenants/{TENANT}/template", json=fast_template("0"))
        gone = (await c.post("/v1/jobs", json={"tenant": TENANT, **SEED_BODY})).json()
        await wait_job(c, gone["uuid"])
        for _ in range(200):
            if (await c.get(f"/v1/jobs/{gone['uuid']}")).json()["deleted_in_cluster"]:
                break
            await asyncio.sleep(0.01)
        resp = await c.get(f"/v1/jobs/{gone['uuid']}/logs")
        assert resp.status_code == 404 and "ttlSecondsAfterFinished" in resp.text


async def test_delete_removes_job_pods_and_record(stack: Stack) -> None:
    async with stack.client() as c:
        b = await _setup(stack, c, fast_template("30"))
        job = (await c.post("/v1/jobs", json={"tenant": TENANT, **SEED_BODY})).json()
        await wait_job(c, job["uuid"], ("Running",))
        assert (await c.delete(f"/v1/jobs/{job['uuid']}")).status_code == 204
        assert (await c.get(f"/v1/jobs/{job['uuid']}")).status_code == 404
        assert await _cluster_jobs(stack, b["uuid"]) == []
        k = await kube(stack, b["uuid"])
        assert [p async for p in k.list(Pod, namespace=TENANT)] == []
        assert (await c.delete(f"/v1/jobs/{job['uuid']}")).status_code == 404


async def test_a_job_deleted_in_the_cluster_keeps_a_final_record(stack: Stack) -> None:
    async with stack.client() as c:
        b = await _setup(stack, c, fast_template("30"))
        job = (await c.post("/v1/jobs", json={"tenant": TENANT, **SEED_BODY})).json()
        await wait_job(c, job["uuid"], ("Running",))
        k = await kube(stack, b["uuid"])
        await k.delete(Job, job["name"], namespace=TENANT)
        done = await wait_job(c, job["uuid"])
        assert done["status"] == "Failed" and done["deleted_in_cluster"] is True
        assert "deleted from the cluster before it finished" in done["message"]


async def test_seed_routes(stack: Stack) -> None:
    async with stack.client() as c:
        await _setup(stack, c)
        created = await c.post("/pods", json={"tenant": TENANT, **SEED_BODY})
        assert created.status_code == 201 and set(created.json()) == RECORD
        job = created.json()
        await wait_job(c, job["uuid"])
        listed = await c.get("/pods", params={"tenant": TENANT})
        assert listed.status_code == 200
        assert [j["uuid"] for j in listed.json()] == [job["uuid"]]
        assert listed.json()[0]["status"] == "Succeeded"
        by_name = (await c.get("/pods", params={"tenant": TENANT, "name": job["name"]})).json()
        assert len(by_name) == 1
        assert (await c.get("/pods")).status_code == 400
        deleted = await c.delete("/pods", params={"tenant": TENANT, "name": job["name"]})
        assert deleted.status_code == 200 and deleted.json()["uuid"] == job["uuid"]
        assert (await c.get("/pods", params={"tenant": TENANT})).json() == []
        again = await c.delete("/pods", params={"tenant": TENANT, "name": job["name"]})
        assert again.status_code == 404
        unknown = await c.post("/pods", json={"tenant": "nobody", **SEED_BODY})
        assert unknown.status_code == 400
