"""/v1/bays and /v1/clusters end to end on embedded clusters: create → CREATE_COMPLETE,
kubeconfig, resize, delete; the seed body of reference 001; bad input; state rules."""

from __future__ import annotations

import httpx

from tests.stack import Stack, kube_get

SEED = {"name": "testbay", "node_count": "1", "discovery_url": None, "baymodel_id": None,
        "bay_create_timeout": None}


async def _nodes(kubeconfig: str) -> list[dict[str, object]]:
    resp = await kube_get(kubeconfig, "/api/v1/nodes")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def test_seed_body_creates_a_bay_that_completes(stack: Stack) -> None:
    async with stack.client(**{"OpenStack-API-Version": "container-infra latest"}) as c:
        tm = await stack.baymodel(c, "testbaymodel")
        resp = await c.post("/v1/bays", json={**SEED, "baymodel_id": tm["uuid"]})
        assert resp.status_code == 201, resp.text
        bay = resp.json()
        assert bay["status"] == "CREATE_IN_PROGRESS" and bay["node_count"] == 1
        assert bay["baymodel_id"] == tm["uuid"] and bay["bay_create_timeout"] == 60
        done = await stack.wait_bay(c, bay["uuid"])
        assert done["status"] == "CREATE_COMPLETE", done
        assert done["api_address"].startswith("https://127.0.0.1:")  # TLS unless tls_disabled
        assert len(done["master_addresses"]) == 1 and len(done["node_addresses"]) == 1
        nodes = await _nodes((await c.get("/v1/bays/testbay/config")).text)
        assert len(nodes) == 2
        # The same object under the current name.
        cluster = (await c.get(f"/v1/clusters/{bay['uuid']}")).json()
        assert cluster["cluster_template_id"] == tm["uuid"] and cluster["create_timeout"] == 60


async def test_clusters_post_is_202_with_uuid(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "ct")
        resp = await c.post("/v1/clusters", json={"name": "c1", "cluster_template_id": "ct",
                                                  "node_count": 2, "master_count": 1,
                                                  "labels": {"env": "test"}})
        assert resp.status_code == 202 and set(resp.json()) == {"uuid"}
        done = await stack.wait_bay(c, resp.json()["uuid"])
        assert done["status"] == "CREATE_COMPLETE" and done["labels"] == {"env": "test"}


async def test_resize_and_delete(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s")
        bay = await stack.bay(c, "k8s", node_count=3)
        assert len(await _nodes((await c.get(f"/v1/bays/{bay['uuid']}/config")).text)) == 4
        resp = await c.patch(f"/v1/bays/{bay['uuid']}",
                             json=[{"op": "replace", "path": "/node_count", "value": 5}])
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "UPDATE_IN_PROGRESS"
        done = await stack.wait_bay(c, bay["uuid"])
        assert done["status"] == "UPDATE_COMPLETE" and done["node_count"] == 5
        assert len(done["node_addresses"]) == 5
        assert len(await _nodes((await c.get(f"/v1/bays/{bay['uuid']}/config")).text)) == 6
        shrink = await c.patch(f"/v1/bays/{bay['uuid']}",
                               json=[{"op": "replace", "path": "/node_count", "value": "2"}])
        assert shrink.status_code == 202
        assert (await stack.wait_bay(c, bay["uuid"]))["node_addresses"].__len__() == 2
        api = done["api_address"]
        assert (await c.delete(f"/v1/bays/{bay['uuid']}")).status_code == 204
        await stack.wait_bay(c, bay["uuid"], gone=True)
        async with httpx.AsyncClient(verify=False) as k:
            try:
                await k.get(f"{api}/version", timeout=2)
                reachable = True
            except httpx.HTTPError:
                reachable = False
        assert not reachable, "the embedded cluster outlived its bay"


async def test_bad_input(stack: Stack) -> None:
    async with stack.client() as c:
        tm = await stack.baymodel(c, "k8s")
        cases = [
            ({"name": "b", "baymodel_id": "nope"}, "baymodel_id"),
            ({"name": "b", "baymodel_id": tm["uuid"], "node_count": 0}, "node_count"),
            ({"name": "b", "baymodel_id": tm["uuid"], "node_count": "many"}, "node_count"),
            ({"name": "b" * 256, "baymodel_id": tm["uuid"]}, "name"),
            ({"name": "b", "baymodel_id": tm["uuid"], "flavor": "x"}, "flavor"),
            ({"name": "b"}, "baymodel_id"),
        ]
        for body, field in cases:
            resp = await c.post("/v1/bays", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["errors"][0]["field"] == field, resp.text
        assert (await c.get("/v1/bays")).json()["bays"] == []
        bay = await stack.bay(c, tm["uuid"])
        for ops in ([{"op": "replace", "path": "/name", "value": "x"}],
                    [{"op": "replace", "path": "/node_count", "value": 0}],
                    [{"op": "replace", "path": "/node_count", "value": "x"}],
                    [{"op": "move", "path": "/node_count"}], {"node_count": 2}):
            resp = await c.patch(f"/v1/bays/{bay['uuid']}", json=ops)
            assert resp.status_code == 400, (ops, resp.text)
        assert (await c.get(f"/v1/bays/{bay['uuid']}")).json()["status"] == "CREATE_COMPLETE"


async def test_update_refused_unless_complete(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s")
        bay = await stack.bay(c, "k8s", wait=False)
        # Straight after POST the bay is CREATE_IN_PROGRESS (or already complete on a fast machine).
        resp = await c.patch(f"/v1/bays/{bay['uuid']}",
                             json=[{"op": "replace", "path": "/node_count", "value": 2}])
        if resp.status_code == 409:
            assert "CREATE_IN_PROGRESS" in resp.text and "CREATE_COMPLETE" in resp.text
        await stack.wait_bay(c, bay["uuid"])
        assert (await c.delete(f"/v1/bays/{bay['uuid']}")).status_code == 204
        again = await c.patch(f"/v1/bays/{bay['uuid']}",
                              json=[{"op": "replace", "path": "/node_count", "value": 2}])
        assert again.status_code in (404, 409)


async def test_other_projects_bays_are_invisible(stack: Stack) -> None:
    alice = await stack.token("p1", "alice")
    bob = await stack.token("p2", "bob")
    async with stack.client(alice) as a, stack.client(bob) as b:
        await stack.baymodel(a, "k8s")
        bay = await stack.bay(a, "k8s")
        for req in (b.get(f"/v1/bays/{bay['uuid']}"), b.get(f"/v1/bays/{bay['uuid']}/config"),
                    b.delete(f"/v1/bays/{bay['uuid']}"),
                    b.patch(f"/v1/bays/{bay['uuid']}",
                            json=[{"op": "replace", "path": "/node_count", "value": 2}])):
            assert (await req).status_code == 404
        assert (await b.get("/v1/bays")).json()["bays"] == []
        assert (await b.post("/v1/bays", json={"baymodel_id": "k8s"})).status_code == 400


async def test_tls_disabled_template_serves_plain_http(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "plain", tls_disabled=True)
        bay = await stack.bay(c, "plain")
        assert bay["api_address"].startswith("http://127.0.0.1:")
        assert len(await _nodes((await c.get(f"/v1/bays/{bay['uuid']}/config")).text)) == 2
