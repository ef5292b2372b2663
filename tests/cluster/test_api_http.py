"""The HTTP API over real HTTP: auth, discovery, CRUD status codes and bodies, patch types,
delete options, pagination, Table output, field validation and the scale/binding subresources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.cluster.apiserver_helpers import TABLE, BareApi, bare_api, pod_manifest

PODS = "/api/v1/namespaces/default/pods"
RCS = "/api/v1/namespaces/default/replicationcontrollers"


@pytest.fixture
async def api() -> AsyncIterator[BareApi]:
    async with bare_api() as served:
        yield served


def rc_manifest(name: str, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
            "spec": {"replicas": replicas, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}


async def test_auth_is_required_except_health(api: BareApi) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anon:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
            r = await anon.get("/api/v1/pods", headers=headers)
            assert r.status_code == 401
            assert r.json()["kind"] == "Status" and r.json()["reason"] == "Unauthorized"
        for path in ("/healthz", "/readyz", "/livez"):
            r = await anon.get(path)
            assert (r.status_code, r.text) == (200, "ok")


async def test_discovery_documents(api: BareApi) -> None:
    c = api.client
    assert (await c.get("/version")).json()["gitVersion"] == "v1.31.0"
    assert (await c.get("/api")).json()["versions"] == ["v1"]
    groups = (await c.get("/apis")).json()["groups"]
    assert [g["preferredVersion"]["groupVersion"] for g in groups] == ["batch/v1"]
    core = {r["name"]: r for r in (await c.get("/api/v1")).json()["resources"]}
    assert core["pods"]["shortNames"] == ["po"] and core["pods"]["namespaced"] is True
    assert "watch" in core["pods"]["verbs"] and core["nodes"]["namespaced"] is False
    assert core["pods/log"]["verbs"] == ["get"] and core["pods/binding"]["verbs"] == ["create"]
    scale = core["replicationcontrollers/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert {"pods/status", "replicationcontrollers/status"} <= set(core)
    batch = {r["name"] for r in (await c.get("/apis/batch/v1")).json()["resources"]}
    assert batch == {"jobs", "jobs/status"}
    assert (await c.get("/openapi/v2")).status_code == 404
    index = (await c.get("/openapi/v3")).json()["paths"]
    doc = (await c.get(index["api/v1"]["serverRelativeURL"])).json()
    patch_op = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch_op["parameters"])
    assert (await c.get("/apis/apps/v1")).status_code == 404


async def test_create_get_conflict_and_not_found(api: BareApi) -> None:
    c = api.client
    r = await c.post(PODS, json=pod_manifest("web", app="web"))
    assert r.status_code == 201
    created = r.json()
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    r = await c.post(PODS, json=pod_manifest("web"))
    assert r.status_code == 409 and r.json()["reason"] == "AlreadyExists"
    r = await c.get(f"{PODS}/nope")
    assert r.status_code == 404
    assert r.json()["details"] == {"name": "nope", "kind": "pods"}
    r = await c.get("/api/v1/namespaces/missing/pods/x")
    assert r.status_code == 404
    r = await c.post("/api/v1/namespaces/missing/pods", json=pod_manifest("x"))
    assert r.status_code == 404 and 'namespaces "missing" not found' in r.json()["message"]
    stale = dict(created, metadata={**created["metadata"], "labels": {"v": "1"}})
    assert (await c.put(f"{PODS}/web", json=stale)).status_code == 200
    r = await c.put(f"{PODS}/web", json=stale)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"


async def test_invalid_and_undecodable_bodies(api: BareApi) -> None:
    c = api.client
    bad = pod_manifest("web")
    bad["spec"]["containers"][0].pop("image")
    r = await c.post(PODS, json=bad)
    body = r.json()
    assert r.status_code == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueRequired", "message": "Required value",
                                          "field": "spec.containers[0].image"}]
    r = await c.post(PODS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    r = await c.post(PODS, json={**pod_manifest("x"), "kind": "Service"})
    assert r.status_code == 400
    r = await c.put(f"{PODS}/other", json=pod_manifest("web"))
    assert r.status_code == 400
    r = await c.post("/api/v1/namespaces/kube-system/pods",
                     json={**pod_manifest("x"), "metadata": {"name": "x", "namespace": "default"}})
    assert r.status_code == 400
    assert (await c.request("PATCH", PODS)).status_code == 405
    assert (await c.delete("/api/v1/namespaces")).status_code == 405


async def test_patch_types_over_http(api: BareApi) -> None:
    c = api.client
    manifest = pod_manifest("web")
    manifest["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    await c.post(PODS, json=manifest)
    r = await c.patch(f"{PODS}/web", json={"metadata": {"labels": {"a": "1"}}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"a": "1"}
    r = await c.patch(f"{PODS}/web", json={"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}},
                      headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert [x["image"] for x in r.json()["spec"]["containers"]] == ["nginx:1.25", "busybox:2"]
    r = await c.patch(f"{PODS}/web", json=[{"op": "replace", "path": "/metadata/labels/a", "value": "2"}],
                      headers={"Content-Type": "application/json-patch+json"})
    assert r.json()["metadata"]["labels"] == {"a": "2"}
    r = await c.patch(f"{PODS}/web/status", json={"status": {"phase": "Running"}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.json()["status"]["phase"] == "Running"
    r = await c.patch(f"{PODS}/web", json={}, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    applied = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ssa"},
               "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
    r = await c.patch(f"{PODS}/ssa?fieldManager=test", json=applied,
                      headers={"Content-Type": "application/apply-patch+yaml"})
    assert r.status_code == 201


async def test_delete_options_and_collection(api: BareApi) -> None:
    c = api.client
    rc = (await c.post(RCS, json=rc_manifest("r"))).json()
    owner = [{"apiVersion": "v1", "kind": "ReplicationController", "name": "r",
              "uid": rc["metadata"]["uid"], "controller": True}]
    for name in ("r-1", "r-2"):
        pod = pod_manifest(name, app="r")
        pod["metadata"]["ownerReferences"] = owner
        assert (await c.post(PODS, json=pod)).status_code == 201
    r = await c.request("DELETE", f"{RCS}/r", json={"kind": "DeleteOptions", "apiVersion": "v1",
                                                    "propagationPolicy": "Orphan"})
    assert r.status_code == 200 and r.json()["metadata"]["name"] == "r"
    assert len((await c.get(PODS)).json()["items"]) == 2
    await c.post(PODS, json=pod_manifest("other", app="x"))
    r = await c.delete(PODS, params={"labelSelector": "app=r"})
    assert r.status_code == 200 and [i["metadata"]["name"] for i in r.json()["items"]] == ["r-1", "r-2"]
    assert [i["metadata"]["name"] for i in (await c.get(PODS)).json()["items"]] == ["other"]
    r = await c.request("DELETE", f"{PODS}/other", json={"preconditions": {"uid": "wrong"}})
    assert r.status_code == 409
    r = await c.delete(f"{PODS}/other", params={"dryRun": "All"})
    assert r.status_code == 200 and api.store.exists("pods", "default", "other")
    r = await c.delete("/api/v1/namespaces/default")
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Terminating"


async def test_list_selectors_and_pagination(api: BareApi) -> None:
    c = api.client
    for i in range(7):
        await c.post(PODS, json=pod_manifest(f"p{i}", tier="a" if i % 2 else "b"))
    names = [i["metadata"]["name"] for i in
             (await c.get(PODS, params={"labelSelector": "tier in (a)"})).json()["items"]]
    assert names == ["p1", "p3", "p5"]
    r = await c.get("/api/v1/pods", params={"fieldSelector": "metadata.name=p4"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["p4"]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = (await c.get(PODS, params=params)).json()
        assert page["kind"] == "PodList" and page["metadata"]["resourceVersion"]
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        params = {"limit": 3, "continue": token}
    assert seen == [f"p{i}" for i in range(7)]
    assert (await c.get(PODS, params={"labelSelector": "a b"})).status_code == 400
    assert (await c.get(PODS, params={"continue": "garbage"})).status_code == 400


async def test_table_output(api: BareApi) -> None:
    c = api.client
    api.store.create("nodes", {"metadata": {"name": "n1", "labels": {
        "node-role.kubernetes.io/control-plane": ""}}, "status": {
        "conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.31.0"}}})
    await c.post(PODS, json=pod_manifest("web"))
    table = (await c.get(PODS, headers={"Accept": TABLE})).json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [col["name"] for col in table["columnDefinitions"] if col["priority"] == 0] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    row = table["rows"][0]
    assert row["cells"][:4] == ["web", "0/1", "Pending", "0"]
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "web"
    full = (await c.get(PODS, params={"includeObject": "Object"}, headers={"Accept": TABLE})).json()
    assert full["rows"][0]["object"]["kind"] == "Pod"
    nodes = (await c.get("/api/v1/nodes", headers={"Accept": TABLE})).json()
    assert [col["name"] for col in nodes["columnDefinitions"]][:5] == ["Name", "Status", "Roles", "Age",
                                                                        "Version"]
    assert nodes["rows"][0]["cells"][:3] == ["n1", "Ready", "control-plane"]
    await c.post("/api/v1/namespaces/default/services",
                 json={"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    svc = (await c.get("/api/v1/namespaces/default/services/s", headers={"Accept": TABLE})).json()
    assert svc["rows"][0]["cells"][1] == "ClusterIP" and svc["rows"][0]["cells"][4] == "80/TCP"


async def test_field_validation_modes(api: BareApi) -> None:
    c = api.client
    manifest = pod_manifest("web")
    manifest["spec"]["containers"][0]["imagee"] = "typo"
    r = await c.post(PODS, params={"fieldValidation": "Strict"}, json=manifest)
    assert r.status_code == 400
    assert r.json()["message"] == 'strict decoding error: unknown field "spec.containers[0].imagee"'
    r = await c.post(PODS, params={"fieldValidation": "Warn"}, json=manifest)
    assert r.status_code == 201 and "spec.containers[0].imagee" in r.headers["warning"]
    manifest["metadata"]["name"] = "web2"
    r = await c.post(PODS, params={"fieldValidation": "Ignore"}, json=manifest)
    assert r.status_code == 201 and "warning" not in r.headers


async def test_scale_and_binding(api: BareApi) -> None:
    c = api.client
    await c.post(RCS, json=rc_manifest("r", 1))
    scale = (await c.get(f"{RCS}/r/scale")).json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == "app=r"
    r = await c.patch(f"{RCS}/r/scale", json={"spec": {"replicas": 3}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert r.json()["spec"]["replicas"] == 3
    scale = r.json()
    scale["spec"]["replicas"] = 5
    assert (await c.put(f"{RCS}/r/scale", json=scale)).json()["spec"]["replicas"] == 5
    assert (await c.put(f"{RCS}/r/scale", json=scale)).status_code == 409
    assert api.store.get("replicationcontrollers", "default", "r")["spec"]["replicas"] == 5
    scale["metadata"].pop("resourceVersion")
    scale["spec"]["replicas"] = -1
    assert (await c.put(f"{RCS}/r/scale", json=scale)).status_code == 422

    await c.post(PODS, json=pod_manifest("p"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    r = await c.post(f"{PODS}/p/binding", json=binding)
    assert r.status_code == 201 and r.json()["status"] == "Success"
    assert api.store.get("pods", "default", "p")["spec"]["nodeName"] == "n1"
    assert (await c.post(f"{PODS}/p/binding", json=binding)).status_code == 409


async def test_dry_run_create_stores_nothing(api: BareApi) -> None:
    r = await api.client.post(PODS, params={"dryRun": "All"}, json=pod_manifest("ghost"))
    assert r.status_code == 201 and r.json()["spec"]["restartPolicy"] == "Always"
    assert not api.store.exists("pods", "default", "ghost")


async def test_logs_without_controllers_is_503(api: BareApi) -> None:
    await api.client.post(PODS, json=pod_manifest("p"))
    assert (await api.client.get(f"{PODS}/p/log")).status_code == 503
    assert (await api.client.get(f"{PODS}/missing/log")).status_code == 404
