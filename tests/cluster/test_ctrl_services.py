"""Service ClusterIPs (allocated at create, released at delete) and Endpoints following pods'
readiness."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from bayport.cluster.errors import ApiError
from tests.cluster.ctrl_support import Harness, pod_body, running_cluster

Obj = dict[str, Any]


def service_body(name: str, selector: dict[str, str] | None, **spec: Any) -> Obj:
    body: Obj = {"metadata": {"name": name},
                 "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


def endpoints(h: Harness, name: str) -> Obj:
    return h.store.get("endpoints", "default", name)


async def test_cluster_ips_are_allocated_reserved_and_released() -> None:
    async with running_cluster(nodes=1, service_cidr="10.96.0.0/24") as h:
        kube = h.store.create("services", service_body("kubernetes", None))
        assert kube["spec"]["clusterIP"] == "10.96.0.1"
        web = h.store.create("services", service_body("web", {"app": "web"}))
        ip = web["spec"]["clusterIP"]
        assert web["spec"]["clusterIPs"] == [ip]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/24") and ip != "10.96.0.1"
        headless = h.store.create("services", service_body("headless", {"app": "web"}, clusterIP="None"))
        assert headless["spec"]["clusterIP"] == "None"
        fixed = h.store.create("services", service_body("fixed", {"app": "web"}, clusterIP="10.96.0.200"))
        assert fixed["spec"]["clusterIP"] == "10.96.0.200"
        with pytest.raises(ApiError) as taken:
            h.manager.allocate_service_ip(service_body("clash", None, clusterIP="10.96.0.200"))
        assert taken.value.code == 422 and "already allocated" in taken.value.message
        with pytest.raises(ApiError) as outside:
            h.manager.allocate_service_ip(service_body("far", None, clusterIP="192.168.0.1"))
        assert outside.value.code == 422 and "not in the valid range" in outside.value.message
        h.store.delete("services", "default", "web")
        await h.wait_for(lambda: h.manager.service_ips.ip_of("default/web") is None, what="release")
        assert h.manager.service_ips.pool.reserve(ip)        # the address is free again


async def test_endpoints_follow_pods_and_readiness() -> None:
    async with running_cluster(nodes=2) as h:
        h.store.create("services", service_body("web", {"app": "web"}))
        for i in range(2):
            h.store.create("pods", pod_body(f"web-{i}", labels={"app": "web"}))
        h.store.create("pods", pod_body("other", labels={"app": "other"}))
        ips = sorted([(await h.running(f"web-{i}"))["status"]["podIP"] for i in range(2)],
                     key=ipaddress.ip_address)

        def two_ready() -> Obj | None:
            ep = endpoints(h, "web")
            subsets = ep.get("subsets") or []
            return ep if subsets and len(subsets[0].get("addresses") or ()) == 2 else None

        ep = await h.wait_for(two_ready, what="two ready addresses")
        subset = ep["subsets"][0]
        assert [a["ip"] for a in subset["addresses"]] == ips
        assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        assert subset["addresses"][0]["targetRef"]["kind"] == "Pod"
        assert "notReadyAddresses" not in subset
        # a pod that crash-loops is listed as not ready
        h.store.create("pods", pod_body("web-crash", labels={"app": "web"}, annotations={
            "bayport.io/simulated-duration": "0", "bayport.io/simulated-exit-code": "1"}))

        def crash_not_ready() -> bool:
            subsets = endpoints(h, "web").get("subsets") or []
            return any(a["targetRef"]["name"] == "web-crash"
                       for s in subsets for a in s.get("notReadyAddresses") or ())

        await h.wait_for(crash_not_ready, what="crashing pod under notReadyAddresses")
        h.store.delete("pods", "default", "web-0")
        h.store.delete("pods", "default", "web-crash")
        await h.wait_for(lambda: [a["ip"] for s in endpoints(h, "web").get("subsets") or ()
                                  for a in s.get("addresses") or ()] == [h.pod("web-1")["status"]["podIP"]],
                         what="one address left")
        h.store.delete("services", "default", "web")
        await h.wait_for(lambda: not h.store.exists("endpoints", "default", "web"), what="endpoints removed")


async def test_named_target_port_is_resolved_per_pod() -> None:
    async with running_cluster(nodes=1) as h:
        h.store.create("services", service_body("api", {"app": "api"}, ports=[
            {"name": "http", "port": 80, "targetPort": "web"}]))
        body = pod_body("api-0", labels={"app": "api"})
        body["spec"]["containers"][0]["ports"] = [{"name": "web", "containerPort": 9000}]
        h.store.create("pods", body)
        await h.running("api-0")
        await h.wait_for(lambda: (endpoints(h, "api").get("subsets") or [{}])[0].get("ports")
                         == [{"name": "http", "port": 9000, "protocol": "TCP"}], what="resolved port")


async def test_service_without_selector_keeps_foreign_endpoints() -> None:
    async with running_cluster(nodes=1) as h:
        h.store.create("services", service_body("external", None))
        h.store.create("endpoints", {"metadata": {"name": "external"},
                                     "subsets": [{"addresses": [{"ip": "192.0.2.1"}],
                                                  "ports": [{"port": 80, "protocol": "TCP"}]}]})
        h.store.create("pods", pod_body("p"))
        await h.running("p")
        assert endpoints(h, "external")["subsets"][0]["addresses"] == [{"ip": "192.0.2.1"}]
