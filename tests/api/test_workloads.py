"""/v1/pods, /v1/services and /v1/rcs over real HTTP against a whole embedded Bayport: the seed's
manifests, status kept current by the watch, scaling, replacing, deleting, listing."""

from __future__ import annotations

from lightkube.resources.core_v1 import Pod, ReplicationController, Service

from bayport.kube.kinds import UUID_LABEL
from tests.kube import seed
from tests.kube.workload_helpers import cluster, manifest, ready_bay, wait_row
from tests.stack import Stack

POD_FIELDS = {"uuid", "name", "namespace", "bay_uuid", "project_id", "user_id", "labels", "manifest",
              "manifest_url", "status", "status_reason", "k8s_uid", "created_at", "updated_at",
              "deleted_at", "images", "host", "pod_ip", "port_id", "links"}


async def test_seed_redis_master_v1beta3_runs_and_the_row_follows_the_pod(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c)
        resp = await c.post("/v1/pods", json={"manifest_url": None, "bay_uuid": bay["uuid"],
                                              "manifest": seed.REDIS_MASTER_V1BETA3})
        assert resp.status_code == 201, resp.text
        pod = resp.json()
        assert set(pod) == POD_FIELDS
        assert pod["name"] == "redis-master" and pod["namespace"] == "default"
        assert pod["bay_uuid"] == bay["uuid"] and pod["project_id"] == "admin"
        assert pod["labels"] == {"name": "redis", "redis-sentinel": "true", "role": "master"}
        assert pod["images"] == ["kubernetes/redis:v1", "kubernetes/redis:v1"]
        assert pod["manifest"] == seed.REDIS_MASTER_V1BETA3 and pod["k8s_uid"]
        assert pod["status"] in ("Pending", "Running")
        running = await wait_row(c, "pods", pod["uuid"], lambda p: p["status"] == "Running"
                                 and p["host"] is not None and p["pod_ip"] is not None)
        assert running["host"].startswith("testbay-node-")
        async with cluster(stack, bay["uuid"]) as k8s:
            live = await k8s.get(Pod, "redis-master", namespace="default")
        assert live.metadata is not None and live.metadata.labels is not None
        assert live.metadata.labels[UUID_LABEL] == pod["uuid"]
        assert live.metadata.uid == pod["k8s_uid"]
        assert live.apiVersion == "v1"
        assert live.spec is not None and live.spec.nodeName == running["host"]
        assert live.status is not None and live.status.podIP == running["pod_ip"]
        by_name = (await c.get("/v1/pods/redis-master", params={"bay_ident": "testbay"})).json()
        assert by_name["uuid"] == pod["uuid"]


async def test_service_gets_its_cluster_ip(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c)
        resp = await c.post("/v1/services", json={"bay_uuid": "testbay",
                                                  "manifest": seed.REDIS_SENTINEL_SERVICE_V1BETA3})
        assert resp.status_code == 201, resp.text
        svc = resp.json()
        assert svc["selector"] == {"redis-sentinel": "true"}
        assert svc["ip"] and svc["status"] == "Active"
        async with cluster(stack, bay["uuid"]) as k8s:
            live = await k8s.get(Service, "redis-sentinel", namespace="default")
        assert live.spec is not None and live.spec.clusterIP == svc["ip"]
        assert svc["ports"][0]["port"] == 26379 and svc["ports"][0]["protocol"] == "TCP"
        listed = (await c.get("/v1/services", params={"bay_ident": "testbay"})).json()["services"]
        assert [s["ip"] for s in listed] == [svc["ip"]]


async def test_rc_scales_through_patch_and_reports_ready_replicas(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c)
        resp = await c.post("/v1/rcs", json={"bay_uuid": "testbay", "manifest": seed.REDIS_RC_V1BETA3})
        assert resp.status_code == 201, resp.text
        rc = resp.json()
        assert rc["replicas"] == 2 and rc["selector"] == {"name": "redis"}
        await wait_row(c, "rcs", rc["uuid"], lambda r: r["ready_replicas"] == 2 and r["status"] == "Running")
        patched = await c.patch(f"/v1/rcs/{rc['uuid']}",
                                json=[{"op": "replace", "path": "/replicas", "value": 4}])
        assert patched.status_code == 200, patched.text
        assert patched.json()["replicas"] == 4
        await wait_row(c, "rcs", rc["uuid"], lambda r: r["ready_replicas"] == 4 and r["status"] == "Running")
        async with cluster(stack, bay["uuid"]) as k8s:
            live = await k8s.get(ReplicationController, "redis", namespace="default")
            assert live.spec is not None and live.spec.replicas == 4
            pods = [p async for p in k8s.list(Pod, namespace="default", labels={"name": "redis"})]
            assert len(pods) == 4
        for bad in (-1, "many", 10_001, True):
            resp = await c.patch(f"/v1/rcs/{rc['uuid']}",
                                 json=[{"op": "replace", "path": "/replicas", "value": bad}])
            assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "replicas", bad
        resp = await c.patch(f"/v1/rcs/{rc['uuid']}", json=[{"op": "replace", "path": "/name", "value": "x"}])
        assert resp.status_code == 400
        deleted = await c.delete(f"/v1/rcs/{rc['uuid']}")
        assert deleted.status_code == 204
        async with cluster(stack, bay["uuid"]) as k8s:
            rcs = [r async for r in k8s.list(ReplicationController, namespace="default")]
            assert rcs == []
            left = [p async for p in k8s.list(Pod, namespace="default", labels={"name": "redis"})]
            assert left == []  # its pods go with it (propagation Background, as kubectl deletes)


async def test_replacing_a_manifest_updates_object_and_row(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c)
        svc = (await c.post("/v1/services", json={"bay_uuid": "testbay",
                                                  "manifest": manifest("Service", "web")})).json()
        new = manifest("Service", "web", port=8080)
        resp = await c.patch(f"/v1/services/{svc['uuid']}",
                             json=[{"op": "replace", "path": "/manifest", "value": new}])
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["manifest"] == new and body["ports"][0]["port"] == 8080
        assert body["ip"] == svc["ip"]  # the ClusterIP survives a replace
        async with cluster(stack, bay["uuid"]) as k8s:
            live = await k8s.get(Service, "web", namespace="default")
        assert live.spec is not None and live.spec.ports is not None and live.spec.ports[0].port == 8080
        renamed = manifest("Service", "other")
        resp = await c.patch(f"/v1/services/{svc['uuid']}",
                             json=[{"op": "replace", "path": "/manifest", "value": renamed}])
        assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "metadata.name"
        rc = (await c.post("/v1/rcs", json={"bay_uuid": "testbay",
                                            "manifest": manifest("ReplicationController", "r")})).json()
        scaled = await c.patch(f"/v1/rcs/{rc['uuid']}", json=[
            {"op": "replace", "path": "/manifest", "value": manifest("ReplicationController", "r",
                                                                      replicas=3)}])
        assert scaled.status_code == 200 and scaled.json()["replicas"] == 3


async def test_delete_removes_object_and_row(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c)
        pod = (await c.post("/v1/pods", json={"bay_uuid": "testbay",
                                              "manifest": manifest("Pod", "gone")})).json()
        resp = await c.delete(f"/v1/pods/{pod['uuid']}")
        assert resp.status_code == 204
        assert (await c.get(f"/v1/pods/{pod['uuid']}")).status_code == 404
        async with cluster(stack, bay["uuid"]) as k8s:
            assert [p async for p in k8s.list(Pod, namespace="default")] == []
        assert (await c.delete(f"/v1/pods/{pod['uuid']}")).status_code == 404
        again = await c.post("/v1/pods", json={"bay_uuid": "testbay", "manifest": manifest("Pod", "gone")})
        assert again.status_code == 201, again.text


async def test_lists_paginate_filter_by_bay_and_names_resolve(stack: Stack) -> None:
    async with stack.client() as c:
        await ready_bay(stack, c, "one", node_count=1)
        await ready_bay(stack, c, "two", node_count=1)
        for i in range(5):
            resp = await c.post("/v1/pods", json={"bay_uuid": "one", "manifest": manifest("Pod", f"p{i}")})
            assert resp.status_code == 201, resp.text
        await c.post("/v1/pods", json={"bay_uuid": "two", "manifest": manifest("Pod", "p0")})
        names: list[str] = []
        url: str | None = "/v1/pods?bay_ident=one&limit=2&sort_key=name"
        while url:
            body = (await c.get(url.replace(stack.url, ""))).json()
            names += [p["name"] for p in body["pods"]]
            url = body.get("next")
        assert names == [f"p{i}" for i in range(5)]
        assert len((await c.get("/v1/pods")).json()["pods"]) == 6
        detail = (await c.get("/v1/pods/detail", params={"bay_ident": "two"})).json()["pods"]
        assert len(detail) == 1 and "manifest" in detail[0]
        ambiguous = await c.get("/v1/pods/p0")
        assert ambiguous.status_code == 409
        assert (await c.get("/v1/pods/p0", params={"bay_ident": "two"})).status_code == 200
        assert (await c.get("/v1/pods/p0", params={"bay_ident": "nope"})).status_code == 404
        dup = await c.post("/v1/pods", json={"bay_uuid": "one", "manifest": manifest("Pod", "p1")})
        assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "metadata.name"
        assert (await c.get("/v1/rcs")).json() == {"rcs": []}


async def test_kubectl_style_delete_marks_the_row_deleted(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await ready_bay(stack, c)
        pod = (await c.post("/v1/pods", json={"bay_uuid": "testbay",
                                              "manifest": manifest("Pod", "victim")})).json()
        async with cluster(stack, bay["uuid"]) as k8s:
            await k8s.delete(Pod, "victim", namespace="default")
        row = await wait_row(c, "pods", pod["uuid"], lambda p: p["status"] == "Deleted")
        assert row["deleted_at"] is not None and "not through Bayport" in row["status_reason"]
        assert (await c.get("/v1/pods")).json()["pods"] == []
        shown = (await c.get("/v1/pods", params={"show_deleted": "true"})).json()["pods"]
        assert [p["uuid"] for p in shown] == [pod["uuid"]]
        # The name is free again; the deleted row is still there by uuid until deleted.
        again = await c.post("/v1/pods", json={"bay_uuid": "testbay", "manifest": manifest("Pod", "victim")})
        assert again.status_code == 201, again.text
        assert (await c.get("/v1/pods/victim")).json()["uuid"] == again.json()["uuid"]
        assert (await c.delete(f"/v1/pods/{pod['uuid']}")).status_code == 204
        assert (await c.get(f"/v1/pods/{pod['uuid']}")).status_code == 404
        async with cluster(stack, bay["uuid"]) as k8s:
            assert [p.metadata.name async for p in k8s.list(Pod, namespace="default")
                    if p.metadata is not None] == ["victim"]
