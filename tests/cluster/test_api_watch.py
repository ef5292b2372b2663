"""Watches over real HTTP: chunked newline-delimited WatchEvents, initial state, replay from a
resourceVersion, 410 as an ERROR event, timeoutSeconds, Table-wrapped events and cleanup when
the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.cluster.apiserver_helpers import TABLE, BareApi, bare_api, pod_manifest

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
async def api() -> AsyncIterator[BareApi]:
    async with bare_api() as served:
        yield served


async def collect(api: BareApi, path: str, count: int, params: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with api.client.stream("GET", path, params=params, headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                events.append(orjson.loads(line))
            if len(events) == count:
                break
    return events


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


async def test_watch_streams_initial_state_then_changes(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))

    async def writer() -> None:
        await asyncio.sleep(0.05)
        await api.client.post(PODS, json=pod_manifest("b"))
        await api.client.patch(f"{PODS}/b", json={"metadata": {"labels": {"x": "1"}}},
                               headers={"Content-Type": "application/merge-patch+json"})
        await api.client.delete(f"{PODS}/b")

    task = asyncio.create_task(writer())
    events = await asyncio.wait_for(collect(api, PODS, 4, {"watch": "1"}), 5)
    await task
    assert kinds(events) == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "b")]
    assert events[0]["object"]["kind"] == "Pod"


async def test_watch_path_prefix_and_replay(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))
    mark = api.store.resource_version
    api.store.create("pods", pod_manifest("b"))
    api.store.delete("pods", "default", "a")
    events = await asyncio.wait_for(collect(api, "/api/v1/watch/namespaces/default/pods", 2,
                                            {"resourceVersion": str(mark)}), 5)
    assert kinds(events) == [("ADDED", "b"), ("DELETED", "a")]


async def test_too_old_resource_version_is_410_event(api: BareApi) -> None:
    api.store._history = type(api.store._history)(maxlen=5)
    for i in range(20):
        api.store.create("pods", pod_manifest(f"p{i}"))
    events = await asyncio.wait_for(collect(api, PODS, 1, {"watch": "true", "resourceVersion": "2"}), 5)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["kind"] == "Status"


async def test_timeout_seconds_ends_the_stream(api: BareApi) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with api.client.stream("GET", PODS, params={"watch": "1", "timeoutSeconds": "1",
                                                     "resourceVersion": str(api.store.resource_version)}
                                 ) as response:
        body = await response.aread()
    assert body == b""
    assert 0.9 <= loop.time() - started < 3


async def test_table_watch_for_kubectl_get_w(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a"))
    api.store.create("pods", pod_manifest("b"))
    events = await asyncio.wait_for(collect(api, PODS, 2, {"watch": "1"}, {"Accept": TABLE}), 5)
    first, second = (e["object"] for e in events)
    assert first["kind"] == "Table" and first["columnDefinitions"]
    assert second["kind"] == "Table" and second["columnDefinitions"] == []
    assert [first["rows"][0]["cells"][0], second["rows"][0]["cells"][0]] == ["a", "b"]


async def test_single_object_watch_and_selectors(api: BareApi) -> None:
    api.store.create("pods", pod_manifest("a", app="x"))
    api.store.create("pods", pod_manifest("b", app="y"))
    by_name = await asyncio.wait_for(collect(api, "/api/v1/watch/namespaces/default/pods/b", 1), 5)
    assert kinds(by_name) == [("ADDED", "b")]
    by_label = await asyncio.wait_for(collect(api, PODS, 1, {"watch": "1", "labelSelector": "app=x"}), 5)
    assert kinds(by_label) == [("ADDED", "a")]


async def test_client_disconnect_releases_the_watch(api: BareApi) -> None:
    async with api.client.stream("GET", PODS, params={"watch": "1"}):
        for _ in range(100):
            if api.store.watcher_count() == 1:
                break
            await asyncio.sleep(0.01)
        assert api.store.watcher_count() == 1
    for _ in range(200):
        if api.store.watcher_count() == 0:
            break
        await asyncio.sleep(0.01)
    assert api.store.watcher_count() == 0
