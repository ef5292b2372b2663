"""The lightkube async client (what Bayport's conductor uses) against the embedded API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.batch_v1 import JobSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Namespace, Pod

from tests.cluster.apiserver_helpers import TOKEN, BareApi, bare_api


@pytest.fixture
async def served() -> AsyncIterator[tuple[BareApi, AsyncClient]]:
    async with bare_api() as api:
        config = KubeConfig.from_dict({
            "clusters": [{"name": "c", "cluster": {"server": api.url}}],
            "users": [{"name": "u", "user": {"token": TOKEN}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
            "current-context": "x"})
        client = AsyncClient(config)
        try:
            yield api, client
        finally:
            await client.close()


async def test_create_get_list_delete(served: tuple[BareApi, AsyncClient]) -> None:
    _, client = served
    pod = Pod(metadata=ObjectMeta(name="web", labels={"app": "web"}),
              spec=PodSpec(containers=[Container(name="c", image="nginx:1.25")]))
    created = await client.create(pod)
    assert created.metadata is not None and created.metadata.uid
    assert created.spec is not None and created.spec.restartPolicy == "Always"
    fetched = await client.get(Pod, "web")
    assert fetched.metadata is not None and fetched.metadata.resourceVersion
    names = [p.metadata.name async for p in client.list(Pod, labels={"app": "web"}) if p.metadata]
    assert names == ["web"]
    namespaces = {n.metadata.name async for n in client.list(Namespace) if n.metadata}
    assert {"default", "kube-system"} <= namespaces
    await client.delete(Pod, "web")
    with pytest.raises(ApiError) as exc:
        await client.get(Pod, "web")
    assert exc.value.status.code == 404


async def test_watch_sees_changes(served: tuple[BareApi, AsyncClient]) -> None:
    api, client = served
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for kind, obj in client.watch(Pod, namespace="default"):
            assert obj.metadata is not None and obj.metadata.name is not None
            seen.append((kind, obj.metadata.name))
            if len(seen) == 2:
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.1)
    await client.create(Pod(metadata=ObjectMeta(name="w"),
                            spec=PodSpec(containers=[Container(name="c", image="i:1")])))
    await client.delete(Pod, "w")
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "w"), ("DELETED", "w")]
    assert api.store.count("pods") == 0


async def test_invalid_object_reports_causes(served: tuple[BareApi, AsyncClient]) -> None:
    _, client = served
    job = Job(metadata=ObjectMeta(name="j"), spec=JobSpec(template=PodTemplateSpec(spec=PodSpec(
        restartPolicy="Always", containers=[Container(name="c", image="i")]))))
    with pytest.raises(ApiError) as exc:
        await client.create(job)
    assert exc.value.status.code == 422
    assert exc.value.status.details is not None and exc.value.status.details.causes
    assert exc.value.status.details.causes[0].field == "spec.template.spec.restartPolicy"
