"""Node restarts on the podman runtime: a ControllerManager that crashed (its agents gone, every
container left running) is replaced by a fresh one on the same store, whose runtimes find the
containers by label, adopt the live pod and remove what belongs to a pod deleted meanwhile."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from bayport.cluster.controllers import ControllerManager
from bayport.cluster.runtime.podman import PodmanRuntime
from bayport.cluster.spec import ClusterSpec
from bayport.cluster.store import Store
from tests.cluster.ctrl_support import seed
from tests.cluster.podman_support import (
    containers_of,
    leftovers,
    pod_body,
    purge,
    require_podman,
    sh,
    wait_for,
)

pytestmark = pytest.mark.podman


async def _crash(manager: ControllerManager) -> None:
    """What a killed process leaves: agents gone, runtimes not closed, containers running."""
    for agent in manager.fleet.agents.values():
        await agent.stop(keep_runtime=True)
        assert isinstance(agent.runtime, PodmanRuntime)
        await agent.runtime.abandon()
    manager.fleet.agents.clear()
    await manager.stop()


async def test_a_restarted_manager_adopts_live_pods_and_cleans_up_deleted_ones(tmp_path: Path) -> None:
    await require_podman()
    store = Store()
    seed(store, masters=0, nodes=1)
    spec = ClusterSpec(name="adopt", uid=str(uuid.uuid4()), token="t", runtime="podman",
                       data_dir=tmp_path / "bay")
    first = ControllerManager(store, spec)
    second: ControllerManager | None = None
    await first.start()
    try:
        store.create("pods", pod_body("keep", sh("main", "echo started; sleep 3600")))
        store.create("pods", pod_body("gone", sh("main", "sleep 3600")))

        def running(name: str) -> str | None:
            status = store.get("pods", "default", name)["status"]
            return status["containerStatuses"][0]["containerID"] if status.get("phase") == "Running" else None

        kept_id = await wait_for(lambda: running("keep"), what="keep Running")
        await wait_for(lambda: running("gone"), what="gone Running")
        gone_uid = store.get("pods", "default", "gone")["metadata"]["uid"]
        kept_ip = store.get("pods", "default", "keep")["status"]["podIP"]

        await _crash(first)
        assert len(containers_of(spec.uid)) == 2
        store.delete("pods", "default", "gone")

        second = ControllerManager(store, spec)
        await second.start()
        await wait_for(lambda: all(c["Labels"]["bayport.pod-uid"] != gone_uid
                                   for c in containers_of(spec.uid)), what="gone's container removed")
        pod = store.get("pods", "default", "keep")
        status = pod["status"]["containerStatuses"][0]
        assert status["containerID"] == kept_id and status["restartCount"] == 0
        assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"] == kept_ip
        stream = await second.pod_logs("default", "keep", None)
        assert b"started" in b"".join([chunk async for chunk in stream])

        subprocess.run(["podman", "kill", kept_id.removeprefix("podman://")], check=True, capture_output=True)
        await wait_for(lambda: store.get("pods", "default", "keep")["status"]["containerStatuses"][0]
                       ["restartCount"] == 1, what="the adopted container's exit seen and restarted")
    finally:
        await (second or first).stop()
        left = leftovers(spec.uid)
        purge(spec.uid)
    assert left == []
