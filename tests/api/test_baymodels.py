"""/v1/baymodels and /v1/clustertemplates over real HTTP: shapes, pagination, patch, errors."""

from __future__ import annotations

from tests.stack import Stack


async def test_create_show_list_and_both_names(stack: Stack) -> None:
    async with stack.client() as c:
        created = await stack.baymodel(c, "k8s", image_id="fedora-atomic", keypair_id="kp",
                                       labels={"runtime": "simulated"}, docker_volume_size="5")
        assert created["docker_volume_size"] == 5
        assert created["network_driver"] == "bayport"
        assert created["links"][0]["href"].endswith(f"/v1/baymodels/{created['uuid']}")
        by_name = (await c.get("/v1/baymodels/k8s")).json()
        by_ct = (await c.get(f"/v1/clustertemplates/{created['uuid']}")).json()
        assert by_name["uuid"] == by_ct["uuid"] == created["uuid"]
        listed = (await c.get("/v1/clustertemplates")).json()
        assert [t["uuid"] for t in listed["clustertemplates"]] == [created["uuid"]]
        detail = (await c.get("/v1/baymodels/detail")).json()["baymodels"][0]
        assert detail["image_id"] == "fedora-atomic"


async def test_pagination_with_next_links(stack: Stack) -> None:
    async with stack.client() as c:
        for i in range(7):
            await stack.baymodel(c, f"t{i}")
        seen: list[str] = []
        url: str | None = "/v1/baymodels?limit=3&sort_key=name"
        pages = 0
        while url:
            body = (await c.get(url.replace(stack.url, ""))).json()
            seen += [t["name"] for t in body["baymodels"]]
            url = body.get("next")
            pages += 1
        assert seen == [f"t{i}" for i in range(7)]
        assert pages == 3
        desc = (await c.get("/v1/baymodels?sort_key=name&sort_dir=desc&limit=2")).json()
        assert [t["name"] for t in desc["baymodels"]] == ["t6", "t5"]
        bad = await c.get("/v1/baymodels?sort_key=secret")
        assert bad.status_code == 400 and "sort_key" in bad.text
        bad_marker = await c.get("/v1/baymodels?marker=00000000-0000-0000-0000-000000000000")
        assert bad_marker.status_code == 400


async def test_bad_input_is_400_naming_the_field(stack: Stack) -> None:
    async with stack.client() as c:
        cases = [
            ({"name": "x" * 256}, "name"),
            ({"name": "a", "docker_volume_size": "lots"}, "docker_volume_size"),
            ({"name": "a", "coe": "swarm"}, "coe"),
            ({"name": "a", "flavour": "typo"}, "flavour"),
            ({"name": "a", "labels": "k=v"}, "labels"),
        ]
        for body, field in cases:
            resp = await c.post("/v1/baymodels", json=body)
            assert resp.status_code == 400, (body, resp.text)
            err = resp.json()["errors"][0]
            assert err["field"] == field and field in err["detail"], err
            assert err["request_id"] == resp.headers["x-openstack-request-id"]
        malformed = await c.post("/v1/baymodels", content=b'{"name": ',
                                 headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400 and "JSON" in malformed.json()["errors"][0]["detail"]
        assert (await c.get("/v1/baymodels")).json()["baymodels"] == []


async def test_patch_and_in_use_rules(stack: Stack) -> None:
    async with stack.client() as c:
        tm = await stack.baymodel(c, "k8s")
        resp = await c.patch("/v1/baymodels/k8s", json=[
            {"op": "replace", "path": "/image_id", "value": "img2"},
            {"op": "add", "path": "/labels/color", "value": "blue"}])
        assert resp.status_code == 200, resp.text
        assert resp.json()["image_id"] == "img2" and resp.json()["labels"] == {"color": "blue"}
        bad = await c.patch("/v1/baymodels/k8s", json=[{"op": "replace", "path": "/uuid", "value": "x"}])
        assert bad.status_code == 400 and "/uuid" in bad.text
        bad_type = await c.patch("/v1/baymodels/k8s", json=[
            {"op": "replace", "path": "/docker_volume_size", "value": -1}])
        assert bad_type.status_code == 400 and "docker_volume_size" in bad_type.text
        await stack.bay(c, tm["uuid"], wait=True)
        locked = await c.patch("/v1/baymodels/k8s", json=[
            {"op": "replace", "path": "/image_id", "value": "img3"}])
        assert locked.status_code == 409 and "/image_id" in locked.text
        renamed = await c.patch("/v1/baymodels/k8s", json=[
            {"op": "replace", "path": "/name", "value": "k8s-renamed"}])
        assert renamed.status_code == 200 and renamed.json()["name"] == "k8s-renamed"
        refused = await c.delete("/v1/baymodels/k8s-renamed")
        assert refused.status_code == 409 and "used by" in refused.text


async def test_ambiguous_name_is_409(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "dup")
        await stack.baymodel(c, "dup")
        resp = await c.get("/v1/baymodels/dup")
        assert resp.status_code == 409 and "uuid" in resp.json()["errors"][0]["detail"]


async def test_delete_unused(stack: Stack) -> None:
    async with stack.client() as c:
        tm = await stack.baymodel(c, "gone")
        assert (await c.delete(f"/v1/baymodels/{tm['uuid']}")).status_code == 204
        assert (await c.get(f"/v1/baymodels/{tm['uuid']}")).status_code == 404
