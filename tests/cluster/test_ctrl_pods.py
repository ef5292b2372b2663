"""Scheduler and node agents: pods are spread over schedulable nodes, reach Running with a real
status (IP from the node's pod CIDR, containerStatuses), and have logs."""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter

import pytest

from bayport.cluster.errors import ApiError
from tests.cluster.ctrl_support import node_object, pod_body, running_cluster


async def test_pods_spread_over_workers_and_skip_tainted_master() -> None:
    async with running_cluster(masters=1, nodes=3) as h:
        for i in range(9):
            h.store.create("pods", pod_body(f"p{i}"))
        for i in range(9):
            await h.running(f"p{i}")
        placed = Counter(h.pod(f"p{i}")["spec"]["nodeName"] for i in range(9))
        assert placed == {"t-node-0": 3, "t-node-1": 3, "t-node-2": 3}
        scheduled = h.events(reason="Scheduled", name="p0")
        assert scheduled and scheduled[0]["source"]["component"] == "default-scheduler"
        assert "Successfully assigned default/p0 to t-node-" in scheduled[0]["message"]


async def test_toleration_and_node_selector_are_respected() -> None:
    async with running_cluster(masters=1, nodes=2) as h:
        tolerant = pod_body("on-master", nodeSelector={"node-role.kubernetes.io/control-plane": ""},
                            tolerations=[{"key": "node-role.kubernetes.io/control-plane",
                                          "operator": "Exists", "effect": "NoSchedule"}])
        h.store.create("pods", tolerant)
        pinned = pod_body("pinned", nodeSelector={"kubernetes.io/hostname": "t-node-1"})
        h.store.create("pods", pinned)
        assert (await h.running("on-master"))["spec"]["nodeName"] == "t-master-0"
        assert (await h.running("pinned"))["spec"]["nodeName"] == "t-node-1"


async def test_unschedulable_pod_gets_event_and_is_retried_when_a_node_appears() -> None:
    async with running_cluster(masters=1, nodes=1) as h:
        h.store.create("pods", pod_body("picky", nodeSelector={"disk": "ssd"}))
        event = await h.wait_for(lambda: h.events(reason="FailedScheduling", name="picky"))
        assert event[0]["type"] == "Warning"
        assert event[0]["message"].startswith("0/2 nodes are available:")
        message = event[0]["message"]
        assert "1 node(s) didn't match Pod's node affinity/selector" in message
        assert "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }" in message
        cond = [c for c in h.pod("picky")["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert cond[0]["status"] == "False" and cond[0]["reason"] == "Unschedulable"
        h.store.create("nodes", node_object("t-ssd", 7, labels={"disk": "ssd"}))
        pod = await h.running("picky")
        assert pod["spec"]["nodeName"] == "t-ssd"


async def test_running_pod_has_real_status() -> None:
    async with running_cluster(masters=0, nodes=1) as h:
        h.store.create("pods", pod_body("web", containers=2))
        pod = await h.running("web")
        status = pod["status"]
        assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("10.100.0.0/24")
        assert status["podIP"] != "10.100.0.1"                    # the gateway is never handed out
        assert status["podIPs"] == [{"ip": status["podIP"]}]
        assert status["hostIP"] == "10.0.0.10"
        assert status["startTime"].endswith("Z")
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions == {"PodReadyToStartContainers": "True", "Initialized": "True",
                              "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
        names = [c["name"] for c in status["containerStatuses"]]
        assert names == ["main", "side1"]
        for cs in status["containerStatuses"]:
            assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
            assert cs["image"] == "docker.io/library/nginx:1.25"
            assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
            assert cs["containerID"].startswith("simulated://")
            assert "startedAt" in cs["state"]["running"]
        reasons = [e["reason"] for e in h.events(name="web")]
        assert reasons.count("Pulled") >= 1
        assert reasons.count("Created") == 2 and reasons.count("Started") == 2


async def test_pod_ips_are_distinct_and_freed_on_delete() -> None:
    async with running_cluster(masters=0, nodes=1) as h:
        for i in range(5):
            h.store.create("pods", pod_body(f"p{i}"))
        ips = {(await h.running(f"p{i}"))["status"]["podIP"] for i in range(5)}
        assert len(ips) == 5
        agent = h.manager.fleet.agents["t-node-0"]
        assert agent.pool is not None and len(agent.pool) == 5
        h.store.delete("pods", "default", "p0")
        await h.wait_for(lambda: agent.pool is not None and len(agent.pool) == 4, what="IP released")
        await h.wait_for(lambda: len(agent) == 4, what="record dropped")


async def test_preset_node_name_skips_the_scheduler() -> None:
    async with running_cluster(masters=1, nodes=2) as h:
        h.store.create("pods", pod_body("direct", nodeName="t-master-0"))
        pod = await h.running("direct")
        assert pod["spec"]["nodeName"] == "t-master-0"
        assert not h.events(reason="Scheduled", name="direct")


async def test_logs_say_the_runtime_is_simulated() -> None:
    async with running_cluster(masters=0, nodes=1) as h:
        h.store.create("pods", pod_body("web", containers=2))
        await h.running("web")
        stream = await h.manager.pod_logs("default", "web", "side1")
        text = b"".join([chunk async for chunk in stream]).decode()
        assert text.startswith("bayport simulated runtime: container side1 of pod default/web "
                               "(image docker.io/library/nginx:1.25) started at ")
        assert text.endswith("; no process runs\n")
        with pytest.raises(ApiError) as missing:
            await h.manager.pod_logs("default", "web", None)
        assert missing.value.code == 400 and "choose one of: [main side1]" in missing.value.message
        with pytest.raises(ApiError) as previous:
            await h.manager.pod_logs("default", "web", "main", previous=True)
        assert previous.value.code == 400 and "previous terminated container" in previous.value.message
        with pytest.raises(ApiError) as gone:
            await h.manager.pod_logs("default", "nope", None)
        assert gone.value.code == 404


async def test_pod_deletion_tears_the_sandbox_down() -> None:
    async with running_cluster(masters=0, nodes=1) as h:
        h.store.create("pods", pod_body("web"))
        await h.running("web")
        runtime = h.manager.fleet.agents["t-node-0"].runtime
        assert len(await runtime.list_pod_sandboxes()) == 1
        h.store.delete("pods", "default", "web")
        for _ in range(400):
            if not await runtime.list_pod_sandboxes():
                break
            await asyncio.sleep(0.005)
        assert not await runtime.list_pod_sandboxes()


async def test_watchers_see_pending_then_container_creating_then_running() -> None:
    async with running_cluster(masters=0, nodes=1) as h:
        watch = h.store.watch("pods")
        h.store.create("pods", pod_body("web"))
        seen: list[tuple[str, str]] = []
        async for event in watch:
            status = event.object["status"]
            statuses = status.get("containerStatuses") or [{"state": {}}]
            state = next(iter(statuses[0]["state"]), "")
            reason = statuses[0]["state"].get("waiting", {}).get("reason", state)
            if not seen or seen[-1] != (status["phase"], reason):
                seen.append((status["phase"], reason))
            if status["phase"] == "Running":
                break
        watch.close()
        assert seen == [("Pending", ""), ("Pending", "ContainerCreating"), ("Running", "running")]
