"""Per-project quotas (Magnum's /v1/quotas, with Bayport's resources): an admin sets them, a
project reads its own with what it uses, and creates beyond a limit are a 403 naming the
resource — atomically, so concurrent creates cannot take more than the limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.pg import fresh_database
from tests.stack import Stack, run_stack

SIMULATED = {"labels": {"runtime": "simulated"}}


async def set_quota(stack: Stack, project: str, resource: str, limit: int) -> None:
    async with stack.client() as admin:
        resp = await admin.post("/v1/quotas", json={"project_id": project, "resource": resource,
                                                    "hard_limit": limit})
        assert resp.status_code == 201, resp.text


async def test_limits_are_enforced_and_named(stack: Stack) -> None:
    member = await stack.token("acme")
    await set_quota(stack, "acme", "Cluster", 2)
    await set_quota(stack, "acme", "Node", 5)
    await set_quota(stack, "acme", "CreateTimeout", 60)
    async with stack.client(member) as c:
        await stack.baymodel(c, "k8s", **SIMULATED)
        await stack.bay(c, "k8s", name="a", node_count=1)
        resp = await c.post("/v1/bays", json={"name": "big", "baymodel_id": "k8s", "node_count": 3})
        assert resp.status_code == 403
        error = resp.json()["errors"][0]
        assert error["code"] == "QuotaExceeded" and error["field"] == "Node"
        assert "at most 5 nodes" in error["detail"] and "it has 2" in error["detail"]
        resp = await c.post("/v1/bays", json={"name": "slow", "baymodel_id": "k8s",
                                              "bay_create_timeout": 120})
        assert resp.status_code == 403 and resp.json()["errors"][0]["field"] == "create_timeout"
        await stack.bay(c, "k8s", name="b", node_count=1)
        resp = await c.post("/v1/bays", json={"name": "c", "baymodel_id": "k8s"})
        assert resp.status_code == 403 and resp.json()["errors"][0]["field"] == "Cluster"
        resize = await c.patch("/v1/bays/a", json=[{"op": "replace", "path": "/node_count",
                                                     "value": 4}])
        assert resize.status_code == 403 and resize.json()["errors"][0]["field"] == "Node"

        listed = {q["resource"]: q for q in (await c.get("/v1/quotas")).json()["quotas"]}
        assert listed["Cluster"]["hard_limit"] == 2 and listed["Cluster"]["in_use"] == 2
        assert listed["Node"]["in_use"] == 4
        assert listed["Pod"]["default"] is True
        shown = (await c.get("/v1/quotas/acme/Cluster")).json()
        assert shown["hard_limit"] == 2 and shown["in_use"] == 2

        # A member can neither set quotas nor see another project's.
        assert (await c.post("/v1/quotas", json={"project_id": "acme", "resource": "Cluster",
                                                 "hard_limit": 99})).status_code == 403
        assert (await c.get("/v1/quotas?project_id=other")).status_code == 404
        assert (await c.get("/v1/quotas/other/Cluster")).status_code == 404

    async with stack.client() as admin:
        assert (await admin.patch("/v1/quotas/acme/Cluster", json={"hard_limit": 3})).status_code == 202
        assert (await admin.patch("/v1/quotas/acme/Node", json={"hard_limit": 6})).status_code == 202
        everything = (await admin.get("/v1/quotas")).json()["quotas"]
        assert {(q["project_id"], q["resource"]) for q in everything} >= {("acme", "Cluster")}
        bad = await admin.post("/v1/quotas", json={"project_id": "acme", "resource": "Gpu",
                                                   "hard_limit": 1})
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "resource"
        again = await admin.post("/v1/quotas", json={"project_id": "acme", "resource": "Cluster",
                                                     "hard_limit": 1})
        assert again.status_code == 409
    async with stack.client(member) as c:
        await stack.bay(c, "k8s", name="c", node_count=1)
    async with stack.client() as admin:
        gone = await admin.request("DELETE", "/v1/quotas",
                                   json={"project_id": "acme", "resource": "Cluster"})
        assert gone.status_code == 204
        assert (await admin.get("/v1/quotas/acme/Cluster")).status_code == 404


async def test_pod_quota(stack: Stack) -> None:
    member = await stack.token("pods")
    await set_quota(stack, "pods", "Pod", 1)
    manifest = ("apiVersion: v1\nkind: Pod\nmetadata: {{name: {}}}\n"
                "spec: {{containers: [{{name: c, image: busybox}}]}}\n")
    async with stack.client(member) as c:
        await stack.baymodel(c, "k8s", **SIMULATED)
        bay = await stack.bay(c, "k8s", name="b")
        first = await c.post("/v1/pods", json={"bay_uuid": bay["uuid"], "manifest": manifest.format("one")})
        assert first.status_code == 201, first.text
        second = await c.post("/v1/pods", json={"bay_uuid": bay["uuid"], "manifest": manifest.format("two")})
        assert second.status_code == 403 and second.json()["errors"][0]["field"] == "Pod"


@pytest.mark.postgres
async def test_concurrent_creates_cannot_pass_the_limit(tmp_path: Path) -> None:
    async with fresh_database() as url, run_stack(tmp_path, database_url=url) as stack:
        member = await stack.token("racer")
        await set_quota(stack, "racer", "Cluster", 5)
        async with stack.client(member) as c:
            await stack.baymodel(c, "k8s", **SIMULATED)
            answers = await asyncio.gather(*(
                c.post("/v1/bays", json={"name": f"r{i}", "baymodel_id": "k8s"}) for i in range(30)))
        codes = sorted(a.status_code for a in answers)
        assert codes.count(201) == 5 and codes.count(403) == 25, codes
