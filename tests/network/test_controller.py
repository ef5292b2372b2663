"""The pod-network controller end to end on a whole Bayport: pods created through the bay's
Kubernetes API (lightkube) and through /v1/pods get a port, Kuryr's annotations in Neutron's
shapes, and exactly that address as their podIP; deletes free the port."""

from __future__ import annotations

import asyncio
import ipaddress

from lightkube.resources.core_v1 import Pod

from bayport.network.annotation_keys import PORT_ID
from tests.kube.workload_helpers import cluster, manifest, wait_row
from tests.network.controller_support import (
    controller,
    networked_bay,
    pod,
    pool_subnets,
    port_annotations,
    ports,
    wait_for,
    wait_pod,
)
from tests.stack import Stack

PORT_KEYS = {"id", "name", "network_id", "tenant_id", "mac_address", "fixed_ips", "device_owner",
             "device_id", "status", "admin_state_up", "port_security_enabled", "security_groups",
             "allowed_address_pairs", "binding:host_id", "binding:vnic_type", "binding:vif_type",
             "binding:vif_details", "binding:profile"}
SUBNET_KEYS = {"id", "name", "network_id", "tenant_id", "cidr", "gateway_ip", "ip_version",
               "allocation_pools", "dns_nameservers", "host_routes", "enable_dhcp", "ipv6_ra_mode",
               "ipv6_address_mode", "subnetpool_id"}


async def test_a_pod_gets_a_port_its_annotations_and_that_address(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            await k8s.create(pod("nginx"))
            running = await wait_pod(k8s, "nginx")
            port, subnet, port_id = port_annotations(running)
            net = (await pool_subnets(stack, bay["uuid"], 1))[0]
            first, gateway, last = str(net[2]), str(net[1]), str(net[254])
            assert running.metadata is not None and running.status is not None
            assert set(port) == PORT_KEYS and set(subnet) == SUBNET_KEYS
            assert port["name"] == "nginx" and port["id"] == port_id
            assert port["device_id"] == running.metadata.uid
            assert port["tenant_id"] == "admin" and port["status"] == "ACTIVE"
            assert port["mac_address"].startswith("fa:16:3e:")
            assert port["network_id"] == subnet["network_id"]
            assert subnet["cidr"] == str(net) and subnet["gateway_ip"] == gateway
            assert subnet["allocation_pools"] == [{"start": first, "end": last}]
            assert port["fixed_ips"] == [{"subnet_id": subnet["id"], "ip_address": first}]
            assert running.status.podIP == port["fixed_ips"][0]["ip_address"]
            held = await ports(stack, bay["uuid"])
            assert [(p.id, p.ip_address, p.device_id) for p in held] == [
                (port_id, first, running.metadata.uid)]

            await k8s.delete(Pod, "nginx", namespace="default")
            await wait_for(lambda: _no_ports(stack, bay["uuid"]), "port freed")


async def _no_ports(stack: Stack, bay_uuid: str) -> bool:
    return not await ports(stack, bay_uuid)


async def test_pods_through_bayport_and_the_cluster_api_all_get_their_port_as_pod_ip(stack: Stack
                                                                                   ) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c, node_count=2)
        async with cluster(stack, bay["uuid"]) as k8s:
            created = await asyncio.gather(
                *(c.post("/v1/pods", json={"bay_uuid": bay["uuid"], "manifest": manifest("Pod", f"api-{i}")})
                  for i in range(3)),
                *(k8s.create(pod(f"kube-{i}")) for i in range(5)))
            for resp in created[:3]:
                assert resp.status_code == 201, resp.text
            names = [f"api-{i}" for i in range(3)] + [f"kube-{i}" for i in range(5)]
            pods = [await wait_pod(k8s, n) for n in names]
            held = {p.device_id: p for p in await ports(stack, bay["uuid"])}
            assert len(held) == 8
            net = (await pool_subnets(stack, bay["uuid"], 1))[0]
            addresses = set()
            for p in pods:
                assert p.metadata is not None and p.status is not None
                port = held[p.metadata.uid]
                assert p.status.podIP == port.ip_address
                assert p.metadata.annotations is not None
                assert p.metadata.annotations[PORT_ID] == port.id
                assert ipaddress.ip_address(port.ip_address) in net
                addresses.add(port.ip_address)
            assert len(addresses) == 8
            for i, resp in enumerate(created[:3]):
                uid = pods[i].metadata.uid  # type: ignore[union-attr]
                row = await wait_row(c, "pods", resp.json()["uuid"], lambda r: r["pod_ip"] is not None)
                assert row["pod_ip"] == held[uid].ip_address and row["k8s_uid"] == uid
            network = controller(stack).bays[bay["uuid"]]
            await network.settled()
            assert not network.failed


async def test_a_finished_pod_gives_its_address_back_and_stays(stack: Stack) -> None:
    """Succeeded/Failed pods keep their object (as finished Job pods do) but not their port,
    so finished pods never exhaust a namespace's /24."""
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            done = pod("one-shot", **{"bayport.io/simulated-duration": "0",
                                      "bayport.io/simulated-exit-code": "0"})
            assert done.spec is not None
            done.spec.restartPolicy = "Never"
            await k8s.create(done)
            await wait_pod(k8s, "one-shot",
                           done=lambda p: p.status is not None and p.status.phase == "Succeeded")
            await wait_for(lambda: _no_ports(stack, bay["uuid"]), "finished pod's port freed")
            assert (await k8s.get(Pod, "one-shot", namespace="default")).metadata is not None
            # The address is free for the next pod.
            await k8s.create(pod("next"))
            running = await wait_pod(k8s, "next")
            assert running.status is not None and running.status.podIP is not None

