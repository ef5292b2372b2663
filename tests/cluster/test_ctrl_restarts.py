"""restartPolicy for simulated exits: Always and OnFailure restart with restartCount++ and
back-off, Never leaves the container terminated; init containers run first."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.cluster.ctrl_support import Harness, pod_body, running_cluster

Obj = dict[str, Any]


def exiting(name: str, policy: str, code: str, duration: str = "0.01") -> Obj:
    return pod_body(name, restart_policy=policy, annotations={
        "bayport.io/simulated-duration": duration, "bayport.io/simulated-exit-code": code})


def main_status(h: Harness, name: str) -> Obj:
    statuses = h.pod(name)["status"].get("containerStatuses") or [{"restartCount": 0}]
    status: Obj = statuses[0]
    return status


async def test_always_restarts_with_growing_count_and_keeps_previous_logs() -> None:
    async with running_cluster(nodes=1) as h:
        h.store.create("pods", exiting("loop", "Always", "0"))
        await h.wait_for(lambda: main_status(h, "loop")["restartCount"] >= 2, what="two restarts")
        pod = h.pod("loop")
        assert pod["status"]["phase"] == "Running"
        last = main_status(h, "loop")["lastState"]["terminated"]
        assert last["exitCode"] == 0 and last["reason"] == "Completed"
        assert h.events(reason="BackOff", name="loop")[0]["type"] == "Warning"
        stream = await h.manager.pod_logs("default", "loop", None, previous=True)
        text = b"".join([c async for c in stream]).decode()
        assert "exited with code 0" in text


async def test_on_failure_restarts_failures_only() -> None:
    async with running_cluster(nodes=1) as h:
        h.store.create("pods", exiting("flaky", "OnFailure", "2"))
        h.store.create("pods", exiting("fine", "OnFailure", "0"))
        await h.wait_for(lambda: main_status(h, "flaky")["restartCount"] >= 1, what="flaky restarted")
        await h.wait_for(lambda: h.pod("fine")["status"]["phase"] == "Succeeded", what="fine succeeded")
        fine = main_status(h, "fine")
        assert fine["restartCount"] == 0 and fine["state"]["terminated"]["exitCode"] == 0
        assert h.pod("flaky")["status"]["phase"] == "Running"


async def test_never_leaves_the_pod_failed_and_frees_its_ip() -> None:
    async with running_cluster(masters=0, nodes=1) as h:
        h.store.create("pods", exiting("once", "Never", "7"))
        await h.wait_for(lambda: h.pod("once")["status"]["phase"] == "Failed", what="Failed")
        status = h.pod("once")["status"]
        cs = status["containerStatuses"][0]
        assert cs["restartCount"] == 0 and cs["ready"] is False
        assert cs["state"]["terminated"]["exitCode"] == 7 and cs["state"]["terminated"]["reason"] == "Error"
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "PodCompleted"
        assert "podIP" in status
        agent = h.manager.fleet.agents["t-node-0"]
        assert agent.pool is not None and len(agent.pool) == 0
        stream = await h.manager.pod_logs("default", "once", None)
        assert b"exited with code 7" in b"".join([c async for c in stream])


async def test_init_containers_run_before_main_containers() -> None:
    async with running_cluster(nodes=1) as h:
        body = pod_body("init")
        body["spec"]["initContainers"] = [{"name": "setup", "image": "busybox:1.36"}]
        h.store.create("pods", body)
        pod = await h.running("init")
        init = pod["status"]["initContainerStatuses"][0]
        assert init["state"]["terminated"]["exitCode"] == 0
        assert init["state"]["terminated"]["reason"] == "Completed"
        initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
        assert initialized["status"] == "True"
        started = [e for e in h.events(name="init", reason="Started")]
        assert {e["involvedObject"]["fieldPath"] for e in started} == {"spec.initContainers{setup}",
                                                                       "spec.containers{main}"}


async def test_status_written_by_someone_else_is_restored() -> None:
    async with running_cluster(nodes=1) as h:
        h.store.create("pods", pod_body("web"))
        pod = await h.running("web")
        h.store.patch("pods", "default", "web", {"status": {"phase": "Unknown"}},
                      "application/merge-patch+json", subresource="status")
        await h.wait_for(lambda: h.pod("web")["status"] == pod["status"], what="status restored")
        rv = h.store.resource_version
        await asyncio.sleep(0.05)
        assert h.store.resource_version == rv          # and then it stays put
