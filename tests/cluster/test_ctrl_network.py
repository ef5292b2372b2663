"""wait_for_port_annotation: node agents wait (event-driven, bounded) for the
kuryr.org/neutron-port annotation and use its address as the pod IP."""

from __future__ import annotations

import asyncio
import json

from tests.cluster.ctrl_support import Harness, Obj, pod_body, running_cluster

PORT = "kuryr.org/neutron-port"


def port_annotation(ip: str, mac: str = "fa:16:3e:00:00:01") -> dict[str, str]:
    return {PORT: json.dumps({"id": "port-1", "mac_address": mac,
                              "fixed_ips": [{"subnet_id": "subnet-1", "ip_address": ip}]})}


async def test_annotation_added_later_becomes_the_pod_ip() -> None:
    async with running_cluster(nodes=1, wait_for_port_annotation=True, port_wait_seconds=5.0) as h:
        h.store.create("pods", pod_body("web"))
        waiting = await h.wait_for(lambda: h.events(reason="WaitingForPort", name="web"),
                                   what="WaitingForPort")
        assert waiting[0]["type"] == "Normal"
        pod = h.pod("web")
        assert pod["status"]["phase"] == "Pending" and "podIP" not in pod["status"]
        assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
        await asyncio.sleep(0.05)
        assert h.pod("web")["status"]["phase"] == "Pending"
        patch = {"metadata": {"annotations": port_annotation("10.100.7.42")}}
        h.store.patch("pods", "default", "web", patch, "application/merge-patch+json")
        pod = await h.running("web")
        assert pod["status"]["podIP"] == "10.100.7.42"
        assert pod["status"]["podIPs"] == [{"ip": "10.100.7.42"}]
        rec = h.manager.fleet.agents[pod["spec"]["nodeName"]].record("default/web")
        assert rec is not None and rec.mac == "fa:16:3e:00:00:01"
        assert not h.events(reason="PortTimeout", name="web")


async def test_annotation_present_at_create_starts_at_once() -> None:
    async with running_cluster(nodes=1, wait_for_port_annotation=True, port_wait_seconds=5.0) as h:
        h.store.create("pods", pod_body("ready", annotations=port_annotation("10.100.7.5")))
        pod = await h.running("ready")
        assert pod["status"]["podIP"] == "10.100.7.5"
        assert not h.events(reason="WaitingForPort", name="ready")


async def test_no_annotation_times_out_and_pod_stays_pending() -> None:
    async with running_cluster(nodes=1, wait_for_port_annotation=True, port_wait_seconds=0.1) as h:
        h.store.create("pods", pod_body("lonely"))
        timeout = await h.wait_for(lambda: h.events(reason="PortTimeout", name="lonely"), what="PortTimeout")
        assert timeout[0]["type"] == "Warning"
        await asyncio.sleep(0.15)
        pod = h.pod("lonely")
        assert pod["status"]["phase"] == "Pending"
        assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
        assert len(h.events(reason="PortTimeout", name="lonely")) == 1
        assert h.events(reason="PortTimeout", name="lonely")[0]["count"] == 1   # no retry loop
        assert "podIP" not in pod["status"]


# --- address theft: the node binds only an address the pod may have (cluster.controllers.port_claims)


def _refused(h: Harness, name: str) -> Obj | None:
    pod = h.pod(name)
    return pod if pod["status"].get("phase") == "Failed" else None


async def _refusal(h: Harness, name: str) -> Obj:
    pod: Obj = await h.wait_for(lambda: _refused(h, name), what=f"pod {name} Failed")
    assert pod["status"]["reason"] == "PortRefused"
    assert "podIP" not in pod["status"]
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "PortRefused"
    events = h.events(reason="PortRefused", name=name)
    assert events and events[0]["type"] == "Warning"
    assert events[0]["message"] == pod["status"]["message"]
    return pod


async def test_an_address_outside_the_pod_pool_is_refused() -> None:
    async with running_cluster(nodes=1, wait_for_port_annotation=True, port_wait_seconds=5.0,
                               pod_cidr="10.100.0.0/16", service_cidr="10.254.0.0/16") as h:
        for name, ip in (("loopback", "127.0.0.1"), ("service", "10.254.0.1"),
                         ("host", "192.168.7.5"), ("network", "10.100.0.0"),
                         ("broadcast", "10.100.255.255")):
            h.store.create("pods", pod_body(name, annotations=port_annotation(ip)))
            pod = await _refusal(h, name)
            assert ip in pod["status"]["message"]
        assert "not a unicast pod address" in h.pod("loopback")["status"]["message"]
        assert "in the Service network 10.254.0.0/16" in h.pod("service")["status"]["message"]
        assert "outside the bay's pod pool 10.100.0.0/16" in h.pod("host")["status"]["message"]


async def test_another_live_pods_address_is_refused_on_any_node() -> None:
    async with running_cluster(nodes=2, wait_for_port_annotation=True, port_wait_seconds=5.0) as h:
        h.store.create("pods", pod_body("victim", annotations=port_annotation("10.100.3.9")))
        victim = await h.running("victim")
        assert victim["status"]["podIP"] == "10.100.3.9"
        for i in range(2):         # both nodes: the claims are the cluster's, not one node's
            h.store.create("pods", pod_body(f"thief-{i}", annotations=port_annotation("10.100.3.9"),
                                            nodeName=f"t-node-{i}"))
            pod = await _refusal(h, f"thief-{i}")
            assert victim["metadata"]["uid"] in pod["status"]["message"]
        assert h.pod("victim")["status"]["podIP"] == "10.100.3.9"
        # The victim's address is free again once it is gone.
        h.store.delete("pods", "default", "victim", grace_period_seconds=0)
        await h.wait_for(lambda: not h.store.exists("pods", "default", "victim"), what="victim gone")
        h.store.create("pods", pod_body("heir", annotations=port_annotation("10.100.3.9")))
        assert (await h.running("heir"))["status"]["podIP"] == "10.100.3.9"


async def test_a_port_of_another_device_is_refused() -> None:
    async with running_cluster(nodes=1, wait_for_port_annotation=True, port_wait_seconds=5.0) as h:
        port = json.loads(port_annotation("10.100.4.4")[PORT])
        h.store.create("pods", pod_body("borrower", annotations={
            PORT: json.dumps({**port, "device_id": "uid-of-another-pod"})}))
        pod = await _refusal(h, "borrower")
        assert "uid-of-another-pod" in pod["status"]["message"]
        created = h.store.create("pods", pod_body("owner"))
        own = {**port, "device_id": created["metadata"]["uid"]}
        h.store.patch("pods", "default", "owner", {"metadata": {"annotations": {PORT: json.dumps(own)}}},
                      "application/merge-patch+json")
        assert (await h.running("owner"))["status"]["podIP"] == "10.100.4.4"


async def test_an_operator_chosen_subnet_outside_the_pool_binds_but_not_its_gateway() -> None:
    subnet = {"kuryr.org/neutron-subnet": json.dumps({"cidr": "172.30.5.0/24", "gateway_ip": "172.30.5.1"})}
    async with running_cluster(nodes=1, wait_for_port_annotation=True, port_wait_seconds=5.0,
                               pod_cidr="10.100.0.0/16") as h:
        h.store.create("pods", pod_body("chosen", annotations={**port_annotation("172.30.5.2"), **subnet}))
        assert (await h.running("chosen"))["status"]["podIP"] == "172.30.5.2"
        h.store.create("pods", pod_body("gateway", annotations={**port_annotation("172.30.5.1"), **subnet}))
        assert "gateway" in (await _refusal(h, "gateway"))["status"]["message"]
        h.store.create("pods", pod_body("elsewhere", annotations={**port_annotation("172.30.6.2"), **subnet}))
        message = (await _refusal(h, "elsewhere"))["status"]["message"]
        assert "outside the bay's pod pool 10.100.0.0/16 or the port's subnet 172.30.5.0/24" in message
