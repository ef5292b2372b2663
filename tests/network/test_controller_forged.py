"""Address theft, end to end on a whole Bayport: a pod that brings its own kuryr.org/neutron-port
annotation — naming another pod's address, a Service IP or 127.0.0.1 — is refused, whether it
comes through the bay's Kubernetes API with the tenant's admin credential or through /v1/pods;
pods without one still get their IPAM port, written with the controller's own credential."""

from __future__ import annotations

import json

import pytest
from lightkube import ApiError
from lightkube.resources.core_v1 import Pod, Service

from bayport.network.annotation_keys import NEUTRON_PORT, NEUTRON_SUBNET, PORT_ID
from tests.kube.workload_helpers import cluster, manifest
from tests.network.controller_support import networked_bay, pod, port_annotations, ports, wait_pod
from tests.stack import Stack


def forged_port(ip: str) -> str:
    return json.dumps({"id": "forged", "mac_address": "fa:16:3e:66:66:66",
                       "fixed_ips": [{"subnet_id": "forged", "ip_address": ip}]})


async def test_forged_port_annotations_are_refused_and_real_ports_still_bind(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            await k8s.create(pod("victim"))
            victim = await wait_pod(k8s, "victim")
            assert victim.status is not None and victim.status.podIP
            service = await k8s.get(Service, "kubernetes", namespace="default")
            assert service.spec is not None and service.spec.clusterIP
            targets = {"victim": victim.status.podIP, "service": service.spec.clusterIP,
                       "loopback": "127.0.0.1"}
            for what, ip in targets.items():
                for key, value in ((NEUTRON_PORT, forged_port(ip)), (NEUTRON_SUBNET, "{}"),
                                   (PORT_ID, "forged")):
                    with pytest.raises(ApiError) as refused:
                        await k8s.create(pod(f"thief-{what}", **{key: value}))
                    assert refused.value.status.code == 422
                    assert key in (refused.value.status.message or "")
                # Set afterwards, by patch, with the same (tenant's) credential: refused too.
                await k8s.create(pod(f"late-{what}"))
                with pytest.raises(ApiError) as late:
                    await k8s.patch(Pod, f"late-{what}", {"metadata": {"annotations": {
                        NEUTRON_PORT: forged_port(ip)}}}, namespace="default")
                assert late.value.status.code == 422
                # Through Bayport's API: the cluster's refusal, with its reason.
                text = manifest("Pod", f"api-{what}").replace(
                    "  labels:", f"  annotations: {{{NEUTRON_PORT}: '{forged_port(ip)}'}}\n  labels:")
                answer = await c.post("/v1/pods", json={"bay_uuid": bay["uuid"], "manifest": text})
                assert answer.status_code == 400, answer.text
                assert NEUTRON_PORT in answer.text and "pod-network controller" in answer.text

            held = {p.device_id: p for p in await ports(stack, bay["uuid"])}
            for what in targets:
                late = await wait_pod(k8s, f"late-{what}")
                assert late.metadata is not None and late.status is not None
                port, _, port_id = port_annotations(late)
                assert port["id"] == port_id and port_id != "forged"
                assert late.status.podIP == port["fixed_ips"][0]["ip_address"]
                assert late.status.podIP not in targets.values()
            held = {p.device_id: p for p in await ports(stack, bay["uuid"])}
            assert victim.metadata is not None and held[victim.metadata.uid].ip_address == targets["victim"]
            assert len(held) == 4
            async for p in k8s.list(Pod, namespace="default"):
                assert p.metadata is not None and not (p.metadata.name or "").startswith(("thief", "api-"))
