"""Ports and namespace networks on SQLite and PostgreSQL: idempotent create and
release, /24 carving from the bay's pod pool, bay clean-up, and the annotation shapes
of reference 003.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bayport.db.network import FreeAddressRow, IPAllocationRow, NetworkRow, SubnetRow
from bayport.network import annotation_keys, ipam
from bayport.network.ipam import NetworkInUse, PodPoolExhausted, PortRecord
from tests.network.ipam_support import BACKENDS, count_rows, database_url, ipam_engine, sessions

BAY = "5d12f6fd-a196-4bf0-ae4c-1f639a523a52"
OTHER_BAY = "0e7a8d52-0c56-4a39-9e0e-3f8d2b1c9a77"
PROJECT = "253cbc7015b344bb8d31b980fda6fe60"

# The keys of the annotations in reference 003 (Raven/Kuryr), exactly.
REFERENCE_PORT_KEYS = {
    "admin_state_up", "name", "port_security_enabled", "tenant_id", "security_groups",
    "binding:vnic_type", "device_id", "binding:profile", "allowed_address_pairs", "device_owner",
    "binding:host_id", "network_id", "status", "id", "binding:vif_details", "fixed_ips",
    "binding:vif_type", "mac_address",
}
REFERENCE_SUBNET_KEYS = {
    "name", "host_routes", "tenant_id", "allocation_pools", "cidr", "ipv6_ra_mode", "gateway_ip",
    "subnetpool_id", "network_id", "enable_dhcp", "id", "dns_nameservers", "ip_version",
    "ipv6_address_mode",
}


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with database_url(request.param, tmp_path) as url, ipam_engine(url, create=True) as eng:
        yield eng


async def create(engine: AsyncEngine, device_id: str, *, namespace: str = "default",
                 name: str = "nginx", bay: str = BAY) -> PortRecord:
    async with sessions(engine)() as session, session.begin():
        return await ipam.create_port(session, bay_uuid=bay, project_id=PROJECT,
                                      namespace=namespace, name=name, device_id=device_id)


async def test_create_port_is_idempotent_per_device(engine: AsyncEngine) -> None:
    port = await create(engine, "uid-1")
    again = await create(engine, "uid-1", name="renamed")

    assert again == port
    assert port.name == "nginx"
    assert port.ip_address == "10.100.0.2"
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", port.mac_address)
    assert port.device_owner == "bayport:container"
    assert port.device_id == "uid-1"
    assert port.status == "ACTIVE"
    assert port.project_id == PROJECT and port.bay_uuid == BAY and port.namespace == "default"
    async with sessions(engine)() as session:
        assert await ipam.list_ports(session, BAY) == [port]
        assert await ipam.get_port(session, port.id) == port
    assert await count_rows(engine, IPAllocationRow, port_id=port.id) == 1


async def test_ports_get_distinct_addresses_and_macs(engine: AsyncEngine) -> None:
    ports = [await create(engine, f"uid-{i}", name=f"pod-{i}") for i in range(20)]
    assert [p.ip_address for p in ports] == [f"10.100.0.{i}" for i in range(2, 22)]
    assert len({p.mac_address for p in ports}) == 20
    async with sessions(engine)() as session:
        assert [p.name for p in await ipam.list_ports(session, BAY, device_id="uid-3")] == ["pod-3"]


async def test_release_port_is_idempotent_and_frees_the_address(engine: AsyncEngine) -> None:
    first = await create(engine, "uid-1")
    second = await create(engine, "uid-2")
    async with sessions(engine)() as session, session.begin():
        assert await ipam.release_port_by_device(session, BAY, "uid-1") is True
    async with sessions(engine)() as session, session.begin():
        assert await ipam.release_port_by_device(session, BAY, "uid-1") is False
        assert await ipam.release_port(session, second.id) is True
        assert await ipam.release_port(session, second.id) is False
        assert await ipam.list_ports(session, BAY) == []
    assert await count_rows(engine, IPAllocationRow) == 0
    assert await count_rows(engine, FreeAddressRow, subnet_id=first.subnet_id) == 2


async def test_concurrent_creates_for_one_pod_make_one_port(engine: AsyncEngine) -> None:
    await create(engine, "warm-up")  # the namespace network exists; the race is on the port
    ports = await asyncio.gather(*(create(engine, "uid-race") for _ in range(4)))

    assert len({p.id for p in ports}) == 1
    async with sessions(engine)() as session:
        assert len(await ipam.list_ports(session, BAY, device_id="uid-race")) == 1
    # The losers' addresses went back to the free list, none is held by a phantom.
    assert await count_rows(engine, IPAllocationRow) == 2


async def test_namespaces_get_the_next_free_24_and_released_ones_come_back(engine: AsyncEngine) -> None:
    subnets = {}
    for namespace in ("default", "team-a", "team-b"):
        async with sessions(engine)() as session, session.begin():
            network, subnet = await ipam.ensure_namespace_network(session, BAY, PROJECT, namespace)
        assert network.name == f"{namespace}-net" and network.namespace == namespace
        assert subnet.name == f"{namespace}-subnet" and subnet.network_id == network.id
        subnets[namespace] = subnet
    assert [s.cidr for s in subnets.values()] == ["10.100.0.0/24", "10.100.1.0/24", "10.100.2.0/24"]
    team_a = subnets["team-a"]
    assert team_a.gateway_ip == "10.100.1.1"
    assert team_a.allocation_pools == ({"start": "10.100.1.2", "end": "10.100.1.254"},)
    assert team_a.subnetpool_id == ipam.subnetpool_id(BAY, "10.100.0.0/16")

    async with sessions(engine)() as session, session.begin():
        again = await ipam.ensure_namespace_network(session, BAY, PROJECT, "team-a")
        assert again[1] == team_a
        # Another bay carves its own pool from the start.
        _, other = await ipam.ensure_namespace_network(session, OTHER_BAY, PROJECT, "team-a")
        assert other.cidr == "10.100.0.0/24"

    await create(engine, "uid-b", namespace="team-b")
    async with sessions(engine)() as session, session.begin():
        assert await ipam.release_namespace_network(session, BAY, "team-a") is True
        assert await ipam.release_namespace_network(session, BAY, "team-a") is False
        with pytest.raises(NetworkInUse):
            await ipam.release_namespace_network(session, BAY, "team-b")
        assert await ipam.get_namespace_network(session, BAY, "team-a") is None
        _, reused = await ipam.ensure_namespace_network(session, BAY, PROJECT, "team-c")
    assert reused.cidr == "10.100.1.0/24"
    assert reused.id != team_a.id


async def test_concurrent_namespaces_never_share_a_subnet(engine: AsyncEngine) -> None:
    async def ensure(namespace: str) -> str:
        async with sessions(engine)() as session, session.begin():
            _, subnet = await ipam.ensure_namespace_network(session, BAY, PROJECT, namespace)
            return subnet.cidr

    cidrs = await asyncio.gather(*(ensure(f"ns-{i}") for i in range(6)), ensure("ns-0"))
    assert len(set(cidrs[:6])) == 6
    assert cidrs[6] == cidrs[0]
    assert await count_rows(engine, NetworkRow) == 6


async def test_a_full_pod_pool_is_a_clear_error(engine: AsyncEngine) -> None:
    async with sessions(engine)() as session, session.begin():
        for namespace in ("a", "b"):
            await ipam.ensure_namespace_network(session, BAY, PROJECT, namespace,
                                                pod_pool="10.200.0.0/23")
        with pytest.raises(PodPoolExhausted) as caught:
            await ipam.ensure_namespace_network(session, BAY, PROJECT, "c", pod_pool="10.200.0.0/23")
    assert caught.value.code == "PodPoolExhausted"


async def test_release_bay_networks_drops_only_that_bay(engine: AsyncEngine) -> None:
    for i, namespace in enumerate(("default", "default", "team-a")):
        await create(engine, f"uid-{i}", namespace=namespace)
    kept = await create(engine, "uid-other", bay=OTHER_BAY)
    async with sessions(engine)() as session, session.begin():
        assert await ipam.release_bay_networks(session, BAY) == 2
        assert await ipam.list_ports(session, BAY) == []
        assert await ipam.list_ports(session, OTHER_BAY) == [kept]
    assert await count_rows(engine, SubnetRow) == 1
    assert await count_rows(engine, IPAllocationRow) == 1
    # The bay's namespaces start over, with fresh subnets.
    assert (await create(engine, "uid-new")).ip_address == "10.100.0.2"


async def test_port_status_can_follow_the_node(engine: AsyncEngine) -> None:
    port = await create(engine, "uid-1")
    async with sessions(engine)() as session, session.begin():
        down = await ipam.set_port_status(session, port.id, "DOWN", host_id="node-1")
    assert (down.status, down.host_id) == ("DOWN", "node-1")
    assert ipam.neutron_port_dict(down)["binding:host_id"] == "node-1"


async def test_annotations_have_the_reference_shapes(engine: AsyncEngine) -> None:
    port = await create(engine, "uid-1")
    async with sessions(engine)() as session:
        subnet = await ipam.get_subnet(session, port.subnet_id)
    values = ipam.pod_annotations(port, subnet)

    assert set(values) == {annotation_keys.NEUTRON_PORT, annotation_keys.NEUTRON_SUBNET,
                           annotation_keys.PORT_ID}
    assert values[annotation_keys.PORT_ID] == port.id
    port_doc = json.loads(values[annotation_keys.NEUTRON_PORT])
    subnet_doc = json.loads(values[annotation_keys.NEUTRON_SUBNET])
    assert set(port_doc) == REFERENCE_PORT_KEYS
    assert set(subnet_doc) == REFERENCE_SUBNET_KEYS
    assert port_doc == ipam.neutron_port_dict(port)
    assert subnet_doc == ipam.neutron_subnet_dict(subnet)
    assert port_doc["fixed_ips"] == [{"subnet_id": subnet.id, "ip_address": "10.100.0.2"}]
    assert port_doc["tenant_id"] == PROJECT and port_doc["network_id"] == subnet.network_id
    assert port_doc["device_owner"] == "bayport:container" and port_doc["device_id"] == "uid-1"
    assert port_doc["security_groups"] == [] and port_doc["allowed_address_pairs"] == []
    assert port_doc["admin_state_up"] is True and port_doc["status"] == "ACTIVE"
    assert subnet_doc["cidr"] == "10.100.0.0/24" and subnet_doc["gateway_ip"] == "10.100.0.1"
    assert subnet_doc["allocation_pools"] == [{"start": "10.100.0.2", "end": "10.100.0.254"}]
    assert subnet_doc["ip_version"] == 4 and subnet_doc["enable_dhcp"] is True
    assert subnet_doc["name"] == "default-subnet" and subnet_doc["tenant_id"] == PROJECT
    assert subnet_doc["ipv6_ra_mode"] is None and subnet_doc["ipv6_address_mode"] is None


async def test_a_colliding_mac_is_replaced(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await create(engine, "uid-1")
    macs = iter([first.mac_address, "fa:16:3e:aa:bb:cc"])
    monkeypatch.setattr("bayport.network.ipam.ports.random_mac", lambda: next(macs))
    second = await create(engine, "uid-2")
    assert second.mac_address == "fa:16:3e:aa:bb:cc"
    assert second.ip_address == "10.100.0.3"
