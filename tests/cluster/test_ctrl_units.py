"""Small pieces of the controllers on their own: address pools, taint tolerations, the port
annotation parser, the deduplicating work queue."""

from __future__ import annotations

import asyncio
import json

from bayport.cluster.controllers.addresses import AddressPool, port_address
from bayport.cluster.controllers.scheduler import tolerates
from bayport.cluster.controllers.workqueue import WorkQueue
from bayport.cluster.errors import ApiError


def test_pod_pool_is_sequential_skips_the_gateway_and_reuses_after_wrapping() -> None:
    pool = AddressPool("10.100.3.0/29")               # .0 network, .1 gateway, .7 broadcast
    assert pool.size == 5
    got = [pool.allocate() for _ in range(5)]
    assert got == ["10.100.3.2", "10.100.3.3", "10.100.3.4", "10.100.3.5", "10.100.3.6"]
    assert pool.allocate() is None
    pool.release("10.100.3.4")
    assert pool.allocate() == "10.100.3.4"
    pool.release("10.100.3.2")
    pool.release("10.100.3.5")
    assert pool.allocate() == "10.100.3.5"            # next in sequence first, not the lowest freed
    assert pool.allocate() == "10.100.3.2"
    assert not pool.reserve("10.100.3.3") and not pool.reserve("10.200.0.1")


def test_service_pool_leaves_the_first_address_for_kubernetes() -> None:
    pool = AddressPool("10.96.0.0/24", skip_first=1)
    assert pool.allocate() == "10.96.0.2"
    assert pool.reserve("10.96.0.1")
    assert pool.contains("10.96.0.200") and not pool.contains("10.97.0.1")


def test_tolerations_match_like_kubernetes() -> None:
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    assert not tolerates([], taint)
    assert tolerates([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}], taint)
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                           "effect": "NoExecute"}], taint)
    dedicated = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    assert tolerates([{"key": "dedicated", "value": "gpu"}], dedicated)
    assert not tolerates([{"key": "dedicated", "value": "cpu", "operator": "Equal"}], dedicated)


def test_port_annotation_parsing() -> None:
    pod = {"metadata": {"annotations": {"kuryr.org/neutron-port": json.dumps(
        {"mac_address": "fa:16:3e:aa:bb:cc", "fixed_ips": [{"ip_address": "192.168.1.9"}]})}}}
    assert port_address(pod) == ("192.168.1.9", "fa:16:3e:aa:bb:cc")
    assert port_address({"metadata": {}}) is None
    for broken in ("{not json", '{"fixed_ips": []}', '{"fixed_ips": [{"ip_address": "nope"}]}'):
        assert port_address({"metadata": {"annotations": {"kuryr.org/neutron-port": broken}}}) is None


async def test_work_queue_collapses_duplicates_and_retries_failures() -> None:
    seen: list[str] = []
    failures = {"flaky": 2}

    def reconcile(key: str) -> None:
        seen.append(key)
        if failures.get(key, 0) > 0:
            failures[key] -= 1
            raise ApiError(500, "InternalError", "try again")

    queue = WorkQueue("test", reconcile)
    queue.start()
    for _ in range(5):
        queue.add("a")
    queue.add("flaky")
    await asyncio.sleep(0.2)
    await queue.stop()
    assert seen.count("a") == 1
    assert seen.count("flaky") == 3
