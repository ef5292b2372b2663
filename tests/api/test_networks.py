"""/v1/networks, /v1/subnets and /v1/ports over real HTTP on a whole Bayport: Neutron's
shapes for what the controller made for real pods, the filters, pages, admin create and
delete, and tenancy (another project's objects are 404 or absent; members cannot create)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.kube.workload_helpers import cluster
from tests.network.controller_support import make_namespace, networked_bay, pod, pool_subnets, wait_pod
from tests.network.test_controller import PORT_KEYS, SUBNET_KEYS
from tests.stack import Stack

EXTRA = {"project_id", "bay_uuid", "namespace", "created_at"}
NETWORK_KEYS = {"id", "name", "tenant_id", "project_id", "status", "admin_state_up", "shared", "subnets",
                "router:external", "bay_uuid", "namespace", "created_at"}


async def _pods(stack: Stack, bay_uuid: str) -> dict[str, Any]:
    async with cluster(stack, bay_uuid) as k8s:
        await make_namespace(k8s, "web")
        await asyncio.gather(k8s.create(pod("a")), k8s.create(pod("b")), k8s.create(pod("w", "web")))
        return {p.metadata.name: p for p in [await wait_pod(k8s, "a"), await wait_pod(k8s, "b"),  # type: ignore[union-attr]
                                             await wait_pod(k8s, "w", "web")]}


async def test_ports_networks_and_subnets_in_neutron_shapes_with_filters(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        pods = await _pods(stack, bay["uuid"])
        resp = await c.get("/v1/ports", params={"bay_ident": "testbay"})
        assert resp.status_code == 200, resp.text
        listed = resp.json()["ports"]
        assert sorted(p["name"] for p in listed) == ["a", "b", "w"]
        for port in listed:
            assert set(port) == PORT_KEYS | EXTRA
            assert port["tenant_id"] == port["project_id"] == "admin"
            assert port["bay_uuid"] == bay["uuid"] and port["device_owner"] == "bayport:container"
            live = pods[port["name"]]
            assert port["device_id"] == live.metadata.uid
            assert port["fixed_ips"][0]["ip_address"] == live.status.podIP
        a_uid = pods["a"].metadata.uid
        by_device = (await c.get("/v1/ports", params={"device_id": a_uid})).json()["ports"]
        assert [p["name"] for p in by_device] == ["a"]
        web = (await c.get("/v1/ports", params={"bay_ident": bay["uuid"], "namespace": "web"})).json()
        assert [p["name"] for p in web["ports"]] == ["w"]
        shown = (await c.get(f"/v1/ports/{by_device[0]['id']}")).json()["port"]
        assert shown == by_device[0]

        networks = (await c.get("/v1/networks", params={"bay_ident": "testbay"})).json()["networks"]
        assert sorted(n["namespace"] for n in networks) == ["default", "web"]
        for network in networks:
            assert set(network) == NETWORK_KEYS and len(network["subnets"]) == 1
            assert network["name"] == f"{network['namespace']}-net" and network["status"] == "ACTIVE"
        default = next(n for n in networks if n["namespace"] == "default")
        assert (await c.get(f"/v1/networks/{default['id']}")).json()["network"] == default
        subnets = (await c.get("/v1/subnets", params={"network_id": default["id"]})).json()["subnets"]
        assert len(subnets) == 1 and set(subnets[0]) == SUBNET_KEYS | EXTRA
        subnet = subnets[0]
        assert subnet["id"] == default["subnets"][0] and subnet["namespace"] == "default"
        first, second = await pool_subnets(stack, default["bay_uuid"])
        assert subnet["cidr"] == str(first) and subnet["gateway_ip"] == str(first[1])
        assert (await c.get(f"/v1/subnets/{subnet['id']}")).json()["subnet"] == subnet
        web_subnet = (await c.get("/v1/subnets", params={"namespace": "web"})).json()["subnets"]
        assert [s["cidr"] for s in web_subnet] == [str(second)]
        assert by_device[0]["network_id"] == default["id"]
        assert (await c.get("/v1/ports", params={"network_id": default["id"]})).json()["ports"][0][
            "network_id"] == default["id"]


async def test_lists_page_in_creation_order(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        await _pods(stack, bay["uuid"])
        everything = (await c.get("/v1/ports")).json()["ports"]
        first = (await c.get("/v1/ports", params={"limit": 2})).json()
        assert [p["id"] for p in first["ports"]] == [p["id"] for p in everything[:2]]
        rest = (await c.get(first["next"].replace(stack.url, ""))).json()
        assert [p["id"] for p in rest["ports"]] == [everything[2]["id"]] and "next" not in rest
        bad = await c.get("/v1/ports", params={"marker": "nope"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "marker"


async def test_admins_create_and_delete_namespace_networks(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        made = await c.post("/v1/networks", json={"network": {"bay_ident": "testbay", "namespace": "early"}})
        assert made.status_code == 201, made.text
        network = made.json()["network"]
        assert network["namespace"] == "early" and network["tenant_id"] == "admin" and network["subnets"]
        again = await c.post("/v1/networks", json={"network": {"bay_ident": "testbay", "namespace": "early"}})
        assert again.status_code == 409
        assert (await c.delete(f"/v1/networks/{network['id']}")).status_code == 204
        assert (await c.get(f"/v1/networks/{network['id']}")).status_code == 404

        chosen = await c.post("/v1/subnets", json={"subnet": {"bay_ident": bay["uuid"], "namespace": "db",
                                                              "cidr": "10.100.200.0/24"}})
        assert chosen.status_code == 201, chosen.text
        subnet = chosen.json()["subnet"]
        assert subnet["cidr"] == "10.100.200.0/24" and subnet["gateway_ip"] == "10.100.200.1"
        assert subnet["allocation_pools"] == [{"start": "10.100.200.2", "end": "10.100.200.254"}]
        taken = await c.post("/v1/subnets", json={"subnet": {"network_id": subnet["network_id"]}})
        assert taken.status_code == 409
        async with cluster(stack, bay["uuid"]) as k8s:
            await make_namespace(k8s, "db")
            await k8s.create(pod("pg", "db"))
            running = await wait_pod(k8s, "pg", "db")
        assert running.status is not None and running.status.podIP == "10.100.200.2"
        busy = await c.delete(f"/v1/subnets/{subnet['id']}")
        assert busy.status_code == 409 and busy.json()["errors"][0]["code"] == "NetworkInUse"
        for body, field in (({"subnet": {"bay_ident": "testbay", "namespace": "x", "cidr": "10.1.2.3/24"}},
                             "cidr"),
                            ({"subnet": {"bay_ident": "testbay"}}, "network_id"),
                            ({"network": {"bay_ident": "testbay", "namespace": "Bad_Name"}}, None)):
            url = "/v1/subnets" if "subnet" in body else "/v1/networks"
            resp = await c.post(url, json=body)
            assert resp.status_code == 400, resp.text
            if field:
                assert resp.json()["errors"][0]["field"] == field


async def test_another_projects_pod_network_is_invisible_and_members_cannot_create(stack: Stack) -> None:
    alpha = await stack.token("alpha")
    beta = await stack.token("beta")
    async with stack.client(alpha) as a, stack.client(beta) as b, stack.client() as admin:
        await stack.baymodel(a, "k8s")
        bay = await stack.bay(a, "k8s", name="alphabay")
        assert bay["status"] == "CREATE_COMPLETE"
        async with cluster(stack, bay["uuid"]) as k8s:
            await k8s.create(pod("secret"))
            await wait_pod(k8s, "secret")
        mine = (await a.get("/v1/ports")).json()["ports"]
        assert [(p["name"], p["tenant_id"]) for p in mine] == [("secret", "alpha")]
        network_id, subnet_id = mine[0]["network_id"], mine[0]["fixed_ips"][0]["subnet_id"]
        for path in ("/v1/ports", "/v1/networks", "/v1/subnets"):
            assert (await b.get(path)).json()[path.rsplit("/", 1)[1]] == []
            assert (await admin.get(path)).json()[path.rsplit("/", 1)[1]] == []
            everyone = (await admin.get(path, params={"all_projects": True})).json()
            assert len(everyone[path.rsplit("/", 1)[1]]) == 1
        assert (await b.get("/v1/ports", params={"all_projects": True})).status_code == 403
        for path in (f"/v1/ports/{mine[0]['id']}", f"/v1/networks/{network_id}", f"/v1/subnets/{subnet_id}"):
            assert (await b.get(path)).status_code == 404
            assert (await a.get(path)).status_code == 200
            assert (await admin.get(path)).status_code == 200
        assert (await b.get("/v1/ports", params={"bay_ident": bay["uuid"]})).status_code == 404
        for resp in await asyncio.gather(
                a.post("/v1/networks", json={"network": {"bay_ident": "alphabay", "namespace": "more"}}),
                a.post("/v1/subnets", json={"subnet": {"bay_ident": "alphabay", "namespace": "more"}}),
                a.delete(f"/v1/networks/{network_id}"), a.delete(f"/v1/subnets/{subnet_id}")):
            assert resp.status_code == 403, resp.text
        reader = await stack.token("alpha", role="reader")
        async with stack.client(reader) as r:
            assert len((await r.get("/v1/ports")).json()["ports"]) == 1


async def test_no_token_no_network(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as anonymous:
        for path in ("/v1/ports", "/v1/networks", "/v1/subnets"):
            assert (await anonymous.get(path)).status_code == 401
