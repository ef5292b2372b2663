"""Controllers seen the way Bayport's conductor sees them: an EmbeddedCluster over real HTTP,
driven with the lightkube async client (pods Running via a watch, RC scaling, a Job
completing, Service ClusterIPs and Endpoints, logs, node removal by resize)."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.models.batch_v1 import JobSpec
from lightkube.models.core_v1 import (
    Container,
    PodSpec,
    PodTemplateSpec,
    ReplicationControllerSpec,
    ServicePort,
    ServiceSpec,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Endpoints, Pod, ReplicationController, Service

from bayport.cluster.host import EmbeddedCluster
from bayport.cluster.spec import ClusterSpec

TOKEN = "ctrl-http-token"


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[EmbeddedCluster, AsyncClient]]:
    c = EmbeddedCluster(ClusterSpec(name="ctrl", uid="ctrl-uid", token=TOKEN, master_count=1, node_count=3))
    await c.start()
    config = KubeConfig.from_dict({
        "clusters": [{"name": "c", "cluster": {"server": c.url}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
        "current-context": "x"})
    client = AsyncClient(config)
    try:
        yield c, client
    finally:
        await client.close()
        await c.stop()


def container(name: str = "web", image: str = "nginx:1.25") -> Container:
    return Container(name=name, image=image)


def rc(name: str, replicas: int) -> ReplicationController:
    template = PodTemplateSpec(metadata=ObjectMeta(labels={"app": name}),
                               spec=PodSpec(containers=[container()]))
    spec = ReplicationControllerSpec(replicas=replicas, selector={"app": name}, template=template)
    return ReplicationController(metadata=ObjectMeta(name=name), spec=spec)


async def until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_pod_created_over_http_is_running_on_a_worker(
        cluster: tuple[EmbeddedCluster, AsyncClient]) -> None:
    c, client = cluster
    began = time.perf_counter()
    await client.create(Pod(metadata=ObjectMeta(name="web"), spec=PodSpec(containers=[container()])))
    async for _, pod in client.watch(Pod, namespace="default", fields={"metadata.name": "web"}):
        if pod.status is not None and pod.status.phase == "Running":
            break
    elapsed = time.perf_counter() - began
    assert elapsed < 2.0
    assert pod.spec is not None and pod.spec.nodeName in {"ctrl-node-0", "ctrl-node-1", "ctrl-node-2"}
    status = pod.status
    assert status is not None and status.podIP is not None
    assert status.hostIP is not None and status.hostIP in c.node_addresses()
    node = await client.get(Pod, "web")
    assert node.status is not None and node.status.containerStatuses is not None
    cs = node.status.containerStatuses[0]
    assert cs.ready and cs.restartCount == 0 and cs.state is not None and cs.state.running is not None
    lines = [line async for line in client.log("web")]
    assert lines and lines[0].startswith("bayport simulated runtime: container web of pod default/web")


async def test_rc_scales_through_the_api(cluster: tuple[EmbeddedCluster, AsyncClient]) -> None:
    _, client = cluster
    await client.create(rc("front", 3))

    async def ready(n: int) -> bool:
        rc = await client.get(ReplicationController, "front")
        pods = [p async for p in client.list(Pod, labels={"app": "front"})]
        return bool(rc.status and rc.status.readyReplicas == n and len(pods) == n)

    await until(lambda: ready(3))
    await client.patch(ReplicationController, "front", {"spec": {"replicas": 1}})
    await until(lambda: ready(1))
    await client.delete(ReplicationController, "front")

    async def none_left() -> bool:
        return not [p async for p in client.list(Pod, labels={"app": "front"})]

    await until(none_left)


async def test_job_completes_through_the_api(cluster: tuple[EmbeddedCluster, AsyncClient]) -> None:
    _, client = cluster
    template = PodTemplateSpec(
        metadata=ObjectMeta(annotations={"bayport.io/simulated-duration": "0.05"}),
        spec=PodSpec(restartPolicy="Never", containers=[container("work", "busybox:1.36")]))
    job_spec = JobSpec(template=template, completions=2)
    await client.create(Job(metadata=ObjectMeta(name="batch"), spec=job_spec))

    async def complete() -> Job | None:
        job = await client.get(Job, "batch")
        conds = (job.status.conditions or []) if job.status else []
        return job if any(cd.type == "Complete" and cd.status == "True" for cd in conds) else None

    job = await until(complete)
    assert job.status.succeeded == 2 and job.status.active == 0 and job.status.completionTime is not None


async def test_service_gets_cluster_ip_at_create_and_endpoints(
        cluster: tuple[EmbeddedCluster, AsyncClient]) -> None:
    _, client = cluster
    svc = await client.create(Service(metadata=ObjectMeta(name="api"), spec=ServiceSpec(
        selector={"app": "api"}, ports=[ServicePort(port=80, targetPort=8080)])))
    assert svc.spec is not None and svc.spec.clusterIP is not None
    assert ipaddress.ip_address(svc.spec.clusterIP) in ipaddress.ip_network("10.254.0.0/16")
    assert svc.spec.clusterIP != "10.254.0.1"
    await client.create(Pod(metadata=ObjectMeta(name="api-0", labels={"app": "api"}),
                            spec=PodSpec(containers=[container()])))

    async def listed() -> bool:
        ep = await client.get(Endpoints, "api")
        return bool(ep.subsets and ep.subsets[0].addresses and ep.subsets[0].ports
                    and ep.subsets[0].ports[0].port == 8080)

    await until(listed)


async def test_resize_down_deletes_pods_and_rc_replaces_them(
        cluster: tuple[EmbeddedCluster, AsyncClient]) -> None:
    c, client = cluster
    await client.create(rc("spread", 6))

    async def placement() -> dict[str, int]:
        counts: dict[str, int] = {}
        async for pod in client.list(Pod, labels={"app": "spread"}):
            if pod.status is not None and pod.status.phase == "Running" and pod.spec is not None:
                node = pod.spec.nodeName or ""
                counts[node] = counts.get(node, 0) + 1
        return counts

    await until(lambda: _equals(placement, {"ctrl-node-0": 2, "ctrl-node-1": 2, "ctrl-node-2": 2}))
    await c.resize(1)
    await until(lambda: _equals(placement, {"ctrl-node-0": 6}))


async def _equals(get: Any, expected: dict[str, int]) -> bool:
    return bool(await get() == expected)
