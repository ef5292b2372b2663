"""wait_for_port_annotation: node agents wait (event-driven, bounded) for the
kuryr.org/neutron-port annotation and use its address as the pod IP."""

from __future__ import annotations

import asyncio
import json

from tests.cluster.ctrl_support import pod_body, running_cluster

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
        patch = {"metadata": {"annotations": port_annotation("192.168.7.42")}}
        h.store.patch("pods", "default", "web", patch, "application/merge-patch+json")
        pod = await h.running("web")
        assert pod["status"]["podIP"] == "192.168.7.42"
        assert pod["status"]["podIPs"] == [{"ip": "192.168.7.42"}]
        rec = h.manager.fleet.agents[pod["spec"]["nodeName"]].record("default/web")
        assert rec is not None and rec.mac == "fa:16:3e:00:00:01"
        assert not h.events(reason="PortTimeout", name="web")


async def test_annotation_present_at_create_starts_at_once() -> None:
    async with running_cluster(nodes=1, wait_for_port_annotation=True, port_wait_seconds=5.0) as h:
        h.store.create("pods", pod_body("ready", annotations=port_annotation("192.168.7.5")))
        pod = await h.running("ready")
        assert pod["status"]["podIP"] == "192.168.7.5"
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
