"""The simulated runtime on its own: sandbox start-up delay, timed exits with the annotated exit
code, generated logs (tail, follow), listing for adoption, and cleanup on close."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from bayport.cluster.runtime import (
    ContainerConfig,
    ContainerExit,
    ContainerRuntimeError,
    PodSandboxConfig,
    SimulatedRuntime,
    make_runtime_factory,
)
from bayport.cluster.runtime.base import log_timestamp, utc_log_line
from bayport.cluster.runtime.simulated import normalise_image, simulated_duration
from bayport.cluster.spec import ClusterSpec

Obj = dict[str, Any]


def sandbox_config(annotations: dict[str, str] | None = None,
                   owner_kind: str | None = None) -> PodSandboxConfig:
    meta: Obj = {"name": "p", "namespace": "ns", "uid": "uid-1", "annotations": annotations or {}}
    if owner_kind:
        meta["ownerReferences"] = [{"kind": owner_kind, "name": "o", "uid": "o-uid", "controller": True}]
    return PodSandboxConfig(uid="uid-1", namespace="ns", name="p", node_name="n1",
                            pod={"metadata": meta, "spec": {}}, pod_ip="10.100.0.2")


async def start(runtime: SimulatedRuntime, config: PodSandboxConfig, name: str = "c") -> tuple[str, str]:
    sandbox = await runtime.run_pod_sandbox(config)
    image = await runtime.pull_image("nginx", "IfNotPresent")
    cid = await runtime.create_container(sandbox, ContainerConfig(name=name, image="nginx", spec={}), image)
    await runtime.start_container(cid)
    return sandbox, cid


async def test_annotated_duration_and_exit_code_are_reported_once() -> None:
    exits: list[ContainerExit] = []
    runtime = SimulatedRuntime("n1", startup_delay=0.01)
    await runtime.open(exits.append)
    began = time.monotonic()
    sandbox, cid = await start(runtime, sandbox_config({"bayport.io/simulated-duration": "0.05",
                                                         "bayport.io/simulated-exit-code": "3"}))
    assert time.monotonic() - began >= 0.01
    await asyncio.sleep(0.1)
    assert len(exits) == 1
    ex = exits[0]
    assert (ex.sandbox_id, ex.container_id, ex.container_name, ex.exit_code, ex.reason) == \
        (sandbox, cid, "c", 3, "Error")
    assert 0.04 <= ex.finished_at - ex.started_at < 0.5
    await runtime.close()


def test_job_pods_default_to_one_second_and_others_run_forever() -> None:
    assert simulated_duration(sandbox_config(owner_kind="Job")) == 1.0
    assert simulated_duration(sandbox_config(owner_kind="ReplicationController")) is None
    assert simulated_duration(sandbox_config({"bayport.io/simulated-duration": "2.5"})) == 2.5
    assert simulated_duration(sandbox_config({"bayport.io/simulated-duration": "junk"})) is None


async def test_logs_tail_and_follow() -> None:
    runtime = SimulatedRuntime("n1", startup_delay=0)
    await runtime.open(lambda ex: None)
    _, cid = await start(runtime, sandbox_config({"bayport.io/simulated-duration": "0.05"}), name="web")
    chunks = [c async for c in runtime.container_logs(cid)]
    text = b"".join(chunks).decode()
    assert text.startswith("bayport simulated runtime: container web of pod ns/p "
                           "(image docker.io/library/nginx:latest) started at ")
    assert text.endswith("; no process runs\n")
    assert [c async for c in runtime.container_logs(cid, tail_lines=0)] == []
    followed = [c async for c in runtime.container_logs(cid, follow=True)]
    assert len(followed) == 2 and b"exited with code 0" in followed[1]
    tail = b"".join([c async for c in runtime.container_logs(cid, tail_lines=1)])
    assert tail.count(b"\n") == 1 and b"exited" in tail
    with pytest.raises(ContainerRuntimeError):
        [c async for c in runtime.container_logs("nope")]
    await runtime.close()


async def test_listing_stop_remove_and_close() -> None:
    runtime = SimulatedRuntime("n1", startup_delay=0)
    await runtime.open(lambda ex: None)
    sandbox, cid = await start(runtime, sandbox_config())
    [state] = await runtime.list_pod_sandboxes()
    assert state.sandbox_id == sandbox and state.uid == "uid-1"
    assert state.ready and state.pod_ip == "10.100.0.2"
    assert state.containers[0].container_id == cid and state.containers[0].running
    await runtime.stop_pod_sandbox(sandbox, 0)
    [state] = await runtime.list_pod_sandboxes()
    assert not state.ready and not state.containers[0].running and state.containers[0].exit_code == 137
    await runtime.remove_pod_sandbox(sandbox)
    assert await runtime.list_pod_sandboxes() == []
    await start(runtime, sandbox_config())
    await runtime.close()
    assert await runtime.list_pod_sandboxes() == []
    with pytest.raises(ContainerRuntimeError):
        await runtime.run_pod_sandbox(sandbox_config())


async def test_images_are_normalised_and_pull_policy_applies() -> None:
    assert normalise_image("nginx") == "docker.io/library/nginx:latest"
    assert normalise_image("bitnami/redis:7") == "docker.io/bitnami/redis:7"
    assert normalise_image("quay.io/x/y") == "quay.io/x/y:latest"
    assert normalise_image("localhost:5000/app:1") == "localhost:5000/app:1"
    runtime = SimulatedRuntime("n1", startup_delay=0)
    with pytest.raises(ContainerRuntimeError) as never:
        await runtime.pull_image("busybox:1.36", "Never")
    assert never.value.reason == "ErrImageNeverPull"
    first = await runtime.pull_image("busybox:1.36", "IfNotPresent")
    again = await runtime.pull_image("busybox:1.36", "IfNotPresent")
    always = await runtime.pull_image("busybox:1.36", "Always")
    assert first.pulled and not again.pulled and always.pulled
    assert first.image_id.startswith("docker.io/library/busybox@sha256:")


def test_runtime_factory_follows_the_cluster_spec() -> None:
    spec = ClusterSpec(name="b", uid="u", token="t")
    make = make_runtime_factory(spec)
    assert isinstance(make("n1"), SimulatedRuntime)
    spec.runtime = "rkt"
    with pytest.raises(ValueError, match="unknown cluster runtime 'rkt'"):
        make_runtime_factory(spec)


async def test_logs_with_timestamps_stamp_each_line_in_rfc3339_nano() -> None:
    runtime = SimulatedRuntime("n1", startup_delay=0)
    await runtime.open(lambda ex: None)
    _, cid = await start(runtime, sandbox_config({"bayport.io/simulated-duration": "0.05"}), name="web")
    await asyncio.sleep(0.15)
    lines = b"".join([c async for c in runtime.container_logs(cid, timestamps=True)]).decode().splitlines()
    assert len(lines) == 2
    for line in lines:
        stamp, _, text = line.partition(" ")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp), line
        assert text.startswith("bayport simulated runtime: container web")
    assert lines[0].split(" ", 1)[0] < lines[1].split(" ", 1)[0]
    await runtime.close()


def test_log_timestamps_and_podman_stamps_in_other_offsets() -> None:
    assert log_timestamp(1767323045.5) == "2026-01-02T03:04:05.500000000Z"
    assert utc_log_line(b"2026-01-02T05:04:05.123456789+02:00 hello\n") == \
        b"2026-01-02T03:04:05.123456789Z hello\n"
    assert utc_log_line(b"2026-01-02T03:04:05Z hi") == b"2026-01-02T03:04:05.000000000Z hi"
    assert utc_log_line(b"no stamp here") == b"no stamp here"
