"""The podman runtime under a real EmbeddedCluster: busybox pods really run, exit, restart, log,
and leave nothing behind. Each test's cluster has its own uid; every podman query is scoped to it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cluster.podman_support import (
    IMAGE,
    PodmanCluster,
    containers_of,
    inspect,
    leftovers,
    pod_body,
    podman_cluster,
    require_podman,
    sh,
    wait_for,
)

pytestmark = pytest.mark.podman


def waiting_reason(pc: PodmanCluster, name: str) -> str | None:
    reason = pc.status(name).get("state", {}).get("waiting", {}).get("reason")
    return str(reason) if reason else None


@pytest.fixture(autouse=True)
async def _podman() -> None:
    await require_podman()


async def test_pod_runs_logs_and_deletion_removes_its_containers(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        pc.create(pod_body("hello", sh("main", "echo hello; sleep 3600")))
        pod = await pc.phase("hello", "Running")
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] and status["restartCount"] == 0
        assert status["image"] == IMAGE and status["imageID"].startswith("localhost/busybox@sha256:")
        [container] = containers_of(pc.uid)
        assert status["containerID"] == f"podman://{container['Id']}"
        assert container["Labels"]["bayport.pod-uid"] == pod["metadata"]["uid"]
        assert pod["status"]["podIP"].startswith("10.100.")
        assert "hello\n" in await pc.logs_contain("hello", "hello")

        pc.store.delete("pods", "default", "hello")
        await wait_for(lambda: not [x for x in leftovers(pc.uid) if not x.startswith("bridge ")],
                       what="container, pod and netns removed")


async def test_exit_code_restart_count_and_previous_logs(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        pc.create(pod_body("flaky", sh("main", "echo attempt; exit 3"), restart_policy="OnFailure"))
        pc.create(pod_body("once", sh("main", "echo bye; exit 3"), restart_policy="Never"))

        once = await pc.phase("once", "Failed")
        terminated = once["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
        assert "bye" in await pc.logs("once")

        await wait_for(lambda: pc.status("flaky").get("restartCount", 0) >= 1, what="flaky restarted")
        status = pc.status("flaky")
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert status["lastState"]["terminated"]["reason"] == "Error"
        assert pc.pod("flaky")["status"]["phase"] == "Running"
        assert "attempt" in await pc.logs("flaky", previous=True)
        attempts = {c["Labels"]["bayport.attempt"] for c in containers_of(pc.uid)
                    if c["Labels"]["bayport.container"] == "main" and "flaky" in c["Names"][0]}
        assert {"0", "1"} <= attempts


async def test_env_args_working_dir_and_field_refs(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        container = {"name": "main", "command": ["sh", "-c"],
                     "args": ['echo "greeting=$(GREETING) name=$POD_NAME ip=$POD_IP dir=$(pwd) lit=$LIT"'],
                     "workingDir": "/tmp",
                     "env": [{"name": "GREETING", "value": "hi"}, {"name": "LIT", "value": "$$(GREETING)"},
                             {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                             {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
        pc.create(pod_body("envy", container, restart_policy="Never"))
        pod = await pc.phase("envy", "Succeeded")
        text = await pc.logs("envy")
        assert f"greeting=hi name=envy ip={pod['status']['podIP']} dir=/tmp lit=$(GREETING)" in text


async def test_args_alone_keep_the_image_entrypoint_and_command_drops_cmd(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        pc.create(pod_body("cmdonly", {"name": "main", "command": ["echo", "from-command"]},
                           restart_policy="Never"))
        pc.create(pod_body("argsonly", {"name": "main", "args": ["/bin/echo", "from-args"]},
                           restart_policy="Never"))
        await pc.phase("cmdonly", "Succeeded")
        await pc.phase("argsonly", "Succeeded")
        assert (await pc.logs("cmdonly")).strip() == "from-command"
        assert (await pc.logs("argsonly")).strip() == "from-args"


async def test_follow_streams_until_the_container_exits(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        pc.create(pod_body("ticker", sh("main", "sleep 0.5; for i in 1 2 3; do echo tick$i; sleep 0.3; done"),
                           restart_policy="Never"))
        await pc.phase("ticker", "Running", "Succeeded")
        text = await asyncio.wait_for(pc.logs("ticker", follow=True), timeout=15)
        assert text.split() == ["tick1", "tick2", "tick3"]
        assert (await pc.logs("ticker", tail_lines=1)).split() == ["tick3"]


async def test_resource_limits_reach_the_container(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        resources = {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}
        pc.create(pod_body("limited", sh("main", "sleep 3600", resources=resources)))
        pod = await pc.phase("limited", "Running")
        container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("podman://")
        host = inspect(container_id)["HostConfig"]
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == 64 * 2**20
        assert host["CpuShares"] == 256
        assert pod["status"]["qosClass"] == "Burstable"


async def test_image_policy_never_and_failed_pulls_show_their_reason(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        pc.create(pod_body("never", {"name": "main", "image": "localhost/bayport-absent:0",
                                     "imagePullPolicy": "Never"}))
        pc.create(pod_body("pull", {"name": "main", "image": "127.0.0.1:1/bayport/absent:0",
                                    "imagePullPolicy": "IfNotPresent"}))
        waiting = await wait_for(lambda: waiting_reason(pc, "never") == "ErrImageNeverPull"
                                 and pc.status("never")["state"]["waiting"], what="ErrImageNeverPull")
        assert "localhost/bayport-absent:0" in waiting["message"]
        assert "pull policy of Never" in waiting["message"]
        reasons: set[str] = set()

        def pull_reasons() -> bool:
            waiting = pc.status("pull").get("state", {}).get("waiting", {})
            if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                reasons.add(waiting["reason"])
                assert "127.0.0.1:1/bayport/absent:0" in waiting["message"]
            return reasons == {"ErrImagePull", "ImagePullBackOff"}

        await wait_for(pull_reasons, timeout=30, what="ErrImagePull then ImagePullBackOff")
        assert pc.pod("pull")["status"]["phase"] == "Pending"
        assert not containers_of(pc.uid)


async def test_unsupported_volumes_and_host_paths_are_refused_with_a_reason(tmp_path: Path) -> None:
    # admission refuses hostPath under the default baseline level; the runtime refuses it too
    async with podman_cluster(tmp_path, pod_security="privileged") as pc:
        body = pod_body("hosty", sh("main", "sleep 3600", volumeMounts=[{"name": "etc", "mountPath": "/h"}]),
                        volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}])
        pc.create(body)
        waiting = await wait_for(lambda: waiting_reason(pc, "hosty") == "CreateContainerConfigError"
                                 and pc.status("hosty")["state"]["waiting"], what="hostPath refused")
        assert "hostPath is refused" in waiting["message"]
        assert not containers_of(pc.uid)


async def test_cluster_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        uid = pc.uid
        pc.create(pod_body("a", sh("main", "sleep 3600")))
        pc.create(pod_body("b", sh("main", "sleep 3600"), sh("side", "sleep 3600")))
        await pc.phase("a", "Running")
        await pc.phase("b", "Running")
        assert len(containers_of(uid)) == 3
        assert any(item.startswith("bridge ") for item in leftovers(uid))
    assert leftovers(uid) == []


async def test_pods_deleted_while_starting_leave_nothing(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        for i, delay in enumerate((0.0, 0.05, 0.15, 0.3, 0.6)):
            pc.create(pod_body(f"brief-{i}", sh("main", "sleep 3600")))
            await asyncio.sleep(delay)
            pc.store.delete("pods", "default", f"brief-{i}")
        await wait_for(lambda: not [x for x in leftovers(pc.uid) if not x.startswith("bridge ")],
                       timeout=30, what="every container, pod and netns removed")
