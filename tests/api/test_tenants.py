"""/v1/tenants end to end: a tenant's namespace exists in its bay as soon as the POST answers,
templates are checked, volumes are claims bound under the data dir, deletion is refused while
jobs run, the optional tenant service is consulted, and other projects see nothing."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace, PersistentVolumeClaim

from bayport.conductor.jobs import operations
from tests.jobs.support import TenantService, bay, fast_template, kube, tenant, wait_job
from tests.stack import Stack, run_stack


async def test_tenant_gets_its_namespace_at_once(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        resp = await c.post("/v1/tenants", json={"name": "exam", "bay": b["uuid"]})
        assert resp.status_code == 201, resp.text
        t = resp.json()
        assert re.fullmatch(r"[0-9a-f]{24}", t["id"]) and t["namespace"] == t["id"]
        assert t["bay"] == b["uuid"] and t["name"] == "exam"
        k = await kube(stack, b["uuid"])
        ns = await k.get(Namespace, t["id"])
        assert ns.metadata.labels["bayport.io/tenant"] == t["id"]
        assert (await c.get(f"/v1/tenants/{t['id']}")).json() == t
        listed = (await c.get("/v1/tenants")).json()["tenants"]
        assert [x["id"] for x in listed] == [t["id"]]
        assert (await c.delete(f"/v1/tenants/{t['id']}")).status_code == 204
        assert (await c.get(f"/v1/tenants/{t['id']}")).status_code == 404
        try:
            left = await k.get(Namespace, t["id"])
        except ApiError as exc:
            assert exc.status.code == 404
        else:
            assert left.status.phase == "Terminating"


async def test_bad_tenants_are_refused(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        cases = [({"id": "Not_Valid", "name": "x", "bay": b["uuid"]}, 400, "is not a valid tenant id"),
                 ({"id": "kube-system", "name": "x", "bay": b["uuid"]}, 400, "reserves for itself"),
                 ({"name": "x", "bay": "no-such-bay"}, 400, "bay: bay no-such-bay could not be found"),
                 ({"name": "x"}, 400, "bay is required"),
                 ({"name": "x", "bay": b["uuid"], "extra": 1}, 400, "unknown field 'extra'")]
        for body, status, detail in cases:
            resp = await c.post("/v1/tenants", json=body)
            assert resp.status_code == status, (body, resp.text)
            assert detail in resp.json()["errors"][0]["detail"], resp.text
        await tenant(c, b["uuid"], "dup")
        again = await c.post("/v1/tenants", json={"id": "dup", "name": "x", "bay": b["uuid"]})
        assert again.status_code == 409 and "already exists" in again.text
        building = await stack.bay(c, "jobs-k8s", name="young", wait=False)
        early = await c.post("/v1/tenants", json={"name": "x", "bay": building["uuid"]})
        assert early.status_code == 409 and "CREATE_IN_PROGRESS" in early.text


async def test_namespace_of_someone_else_is_not_taken(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        k = await kube(stack, b["uuid"])
        await k.create(Namespace.from_dict({"metadata": {"name": "taken"}}))
        resp = await c.post("/v1/tenants", json={"id": "taken", "name": "x", "bay": b["uuid"]})
        assert resp.status_code == 409 and "does not belong to tenant taken" in resp.text
        assert (await c.get("/v1/tenants/taken")).status_code == 404


async def test_template_show_and_validated_set(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        t = await tenant(c, b["uuid"], "tpl")
        shown = (await c.get("/v1/tenants/tpl/template")).json()
        assert shown["metadata"]["name"] == "job-{}-{}" and shown["spec"]["ttlSecondsAfterFinished"] == 0
        new = fast_template("0", ttlSecondsAfterFinished=60)
        put = await c.put(f"/v1/tenants/{t['id']}/template", json=new)
        assert put.status_code == 200 and put.json() == new
        assert (await c.get("/v1/tenants/tpl/template")).json() == new
        bad = fast_template()
        bad["metadata"]["namespace"] = "elsewhere"
        resp = await c.put("/v1/tenants/tpl/template", json=bad)
        assert resp.status_code == 400
        assert "metadata.namespace: must not be set" in resp.json()["errors"][0]["detail"]
        bad = fast_template()
        bad["spec"]["template"]["spec"]["containers"][0]["args"] = ["/bin/sh"]
        resp = await c.put("/v1/tenants/tpl/template", json=bad)
        assert resp.status_code == 400 and "placeholder for the command" in resp.text
        bad = fast_template()
        bad["metadata"]["name"] = "copy-vol-job"
        resp = await c.put("/v1/tenants/tpl/template", json=bad)
        assert resp.status_code == 400 and "needs the name placeholder" in resp.text
        assert (await c.get("/v1/tenants/tpl/template")).json() == new


async def test_volumes_are_bound_claims_under_the_data_dir(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        t = await tenant(c, b["uuid"], "vols", fast_template("30"))
        resp = await c.post("/v1/tenants/vols/volumes", json={"name": "nfs-exam", "size": "2Gi"})
        assert resp.status_code == 201, resp.text
        assert resp.json()["name"] == "nfs-exam" and resp.json()["size"] == "2Gi"
        k = await kube(stack, b["uuid"])
        claim = await k.get(PersistentVolumeClaim, "nfs-exam", namespace="vols")
        assert claim.spec.resources.requests["storage"] == "2Gi"
        for _ in range(200):
            vols = (await c.get("/v1/tenants/vols/volumes")).json()["volumes"]
            if vols[0]["status"] == "Bound":
                break
            await asyncio.sleep(0.01)
        assert vols[0]["status"] == "Bound" and vols[0]["volume_name"].startswith("pvc-")
        assert (Path(stack.settings.data_dir) / "bays" / b["uuid"] / "pv" / "vols" / "nfs-exam").is_dir()
        dup = await c.post("/v1/tenants/vols/volumes", json={"name": "nfs-exam"})
        assert dup.status_code == 409
        for body, detail in (({"name": "Bad_Name"}, "name: 'Bad_Name' is not a valid claim name"),
                             ({"name": "ok", "size": "lots"}, "size: 'lots' is not a positive quantity")):
            bad = await c.post("/v1/tenants/vols/volumes", json=body)
            assert bad.status_code == 400 and detail in bad.text
        job = (await c.post("/v1/jobs", json={"tenant": t["id"], "cmd": "sleep 30",
                                              "vols": [{"pvc": "nfs-exam", "mount": "/data"}]})).json()
        await wait_job(c, job["uuid"], ("Running",))
        busy = await c.delete("/v1/tenants/vols/volumes/nfs-exam")
        assert busy.status_code == 409 and job["name"] in busy.text
        assert (await c.delete(f"/v1/jobs/{job['uuid']}")).status_code == 204
        assert (await c.delete("/v1/tenants/vols/volumes/nfs-exam")).status_code == 204
        assert (await c.get("/v1/tenants/vols/volumes")).json()["volumes"] == []
        assert (await c.delete("/v1/tenants/vols/volumes/nfs-exam")).status_code == 404


async def test_delete_is_refused_while_jobs_run_unless_forced(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        await tenant(c, b["uuid"], "busy", fast_template("30"))
        job = (await c.post("/v1/jobs", json={"tenant": "busy", "cmd": "sleep 30"})).json()
        await wait_job(c, job["uuid"], ("Running",))
        refused = await c.delete("/v1/tenants/busy")
        assert refused.status_code == 409
        assert "1 job(s) still running" in refused.text and job["name"] in refused.text
        assert (await c.delete("/v1/tenants/busy", params={"force": "true"})).status_code == 204
        assert (await c.get(f"/v1/jobs/{job['uuid']}")).status_code == 404
        assert (await c.get("/v1/tenants/busy")).status_code == 404


async def test_tenant_service_must_know_the_id(tmp_path: Path) -> None:
    async with TenantService({"5c6e1bd2a7f0e4a1b2c3d4e5"}) as service, \
            run_stack(tmp_path, tenant_service_url=service.url) as stack, stack.client() as c:
        b = await bay(stack, c)
        ok = await c.post("/v1/tenants", json={"id": "5c6e1bd2a7f0e4a1b2c3d4e5", "name": "x",
                                               "bay": b["uuid"]})
        assert ok.status_code == 201, ok.text
        assert service.paths == ["/service/v1/tenants/5c6e1bd2a7f0e4a1b2c3d4e5"]
        unknown = await c.post("/v1/tenants", json={"id": "0123456789abcdef01234567", "name": "x",
                                                    "bay": b["uuid"]})
        assert unknown.status_code == 400
        assert "does not know tenant 0123456789abcdef01234567" in unknown.text and "HTTP 404" in unknown.text
        missing = await c.post("/v1/tenants", json={"name": "x", "bay": b["uuid"]})
        assert missing.status_code == 400 and "id: required when a tenant service" in missing.text
        assert len((await c.get("/v1/tenants")).json()["tenants"]) == 1


async def test_unreachable_tenant_service_is_503(tmp_path: Path) -> None:
    async with TenantService(set()) as service:
        url = service.url
    async with run_stack(tmp_path, tenant_service_url=url) as stack, stack.client() as c:
        b = await bay(stack, c)
        resp = await c.post("/v1/tenants", json={"id": "abc", "name": "x", "bay": b["uuid"]})
        assert resp.status_code == 503 and "cannot be reached" in resp.text


async def test_only_the_owning_project_sees_a_tenant(stack: Stack) -> None:
    alice, bob = await stack.token("alice"), await stack.token("bob")
    async with stack.client(alice) as a, stack.client(bob) as b:
        await stack.baymodel(a, "jobs-k8s")
        abay = await stack.bay(a, "jobs-k8s", name="abay")
        await tenant(a, abay["uuid"], "alice-t", fast_template(), claims=("data",))
        job = (await a.post("/v1/jobs", json={"tenant": "alice-t", "cmd": "ls"})).json()
        assert (await b.get("/v1/tenants")).json()["tenants"] == []
        for method, path in (("GET", "/v1/tenants/alice-t"), ("DELETE", "/v1/tenants/alice-t"),
                             ("GET", "/v1/tenants/alice-t/template"),
                             ("PUT", "/v1/tenants/alice-t/template"),
                             ("GET", "/v1/tenants/alice-t/volumes"),
                             ("DELETE", "/v1/tenants/alice-t/volumes/data"),
                             ("GET", f"/v1/jobs/{job['uuid']}"), ("GET", f"/v1/jobs/{job['uuid']}/logs"),
                             ("DELETE", f"/v1/jobs/{job['uuid']}"), ("GET", "/pods?tenant=alice-t"),
                             ("DELETE", f"/pods?tenant=alice-t&name={job['name']}")):
            resp = await b.request(method, path, json=fast_template() if method == "PUT" else None)
            assert resp.status_code == 404, (method, path, resp.text)
        stolen = await b.post("/v1/jobs", json={"tenant": "alice-t", "cmd": "ls"})
        assert stolen.status_code == 400 and "tenant: tenant alice-t could not be found" in stolen.text
        assert (await b.get("/v1/jobs")).json()["jobs"] == []
        # Nor can bob put a tenant into alice's bay.
        resp = await b.post("/v1/tenants", json={"name": "x", "bay": abay["uuid"]})
        assert resp.status_code == 400 and "could not be found" in resp.text
        assert (await a.get(f"/v1/jobs/{job['uuid']}")).status_code == 200


async def test_deleting_the_bay_removes_its_tenants_and_jobs(stack: Stack) -> None:
    async with stack.client() as c:
        b = await bay(stack, c)
        await tenant(c, b["uuid"], "doomed", fast_template(), claims=("data",))
        job = (await c.post("/v1/jobs", json={"tenant": "doomed", "cmd": "ls"})).json()
        await wait_job(c, job["uuid"])
        assert (await c.delete(f"/v1/bays/{b['uuid']}")).status_code == 204
        await stack.wait_bay(c, b["uuid"], gone=True)
        assert (await c.get("/v1/tenants")).json()["tenants"] == []
        assert (await c.get(f"/v1/jobs/{job['uuid']}")).status_code == 404
        assert b["uuid"] not in operations(stack.conductor).watches.bays
