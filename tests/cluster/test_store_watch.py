"""Store watches: live events, replay from a resourceVersion, 410 when compacted, selector
transitions, initial state, and that a slow watcher never blocks writers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bayport.cluster.store import Store, WatchEvent
from bayport.cluster.watch import Watch


def pod(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}


@pytest.fixture
def store() -> Store:
    s = Store(history_size=50)
    for ns in ("default", "other"):
        s.create("namespaces", {"metadata": {"name": ns}})
    return s


async def drain(watch: Watch, count: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    async with asyncio.timeout(2):
        async for event in watch:
            events.append(event)
            if len(events) == count:
                break
    return events


def summary(events: list[WatchEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.object["metadata"]["name"]) for e in events]


async def test_live_events_in_order(store: Store) -> None:
    watch = store.watch("pods", "default")
    store.create("pods", pod("a"))
    store.create("pods", pod("x", "other"))
    store.patch("pods", "default", "a", {"metadata": {"labels": {"v": "2"}}}, "application/merge-patch+json")
    store.delete("pods", "default", "a")
    events = await drain(watch, 3)
    watch.close()
    assert summary(events) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[-1] == store.resource_version - 0


async def test_replay_from_resource_version(store: Store) -> None:
    store.create("pods", pod("a"))
    mark = store.resource_version
    store.create("pods", pod("b"))
    store.delete("pods", "default", "a")
    watch = store.watch("pods", resource_version=mark)
    store.create("pods", pod("c"))
    events = await drain(watch, 3)
    watch.close()
    assert summary(events) == [("ADDED", "b"), ("DELETED", "a"), ("ADDED", "c")]


async def test_too_old_resource_version_gives_410(store: Store) -> None:
    first = store.resource_version
    for i in range(60):
        store.create("pods", pod(f"p{i}"))
    watch = store.watch("pods", resource_version=first)
    events = [e async for e in watch]
    assert len(events) == 1 and events[0].type == "ERROR"
    assert events[0].object["code"] == 410 and events[0].object["kind"] == "Status"
    recent = store.watch("pods", resource_version=store.resource_version - 5)
    assert len(await drain(recent, 5)) == 5
    recent.close()


async def test_send_initial_lists_current_objects_first(store: Store) -> None:
    store.create("pods", pod("a", app="web"))
    store.create("pods", pod("b", app="db"))
    watch = store.watch("pods", send_initial=True, label_selector="app=web")
    store.create("pods", pod("c", app="web"))
    events = await drain(watch, 2)
    watch.close()
    assert summary(events) == [("ADDED", "a"), ("ADDED", "c")]


async def test_selector_transitions_become_added_and_deleted(store: Store) -> None:
    store.create("pods", pod("a", app="web"))
    by_label = store.watch("pods", label_selector="app=web")
    by_node = store.watch("pods", field_selector="spec.nodeName=n1")
    store.patch("pods", "default", "a", {"metadata": {"labels": {"app": "db"}}},
                "application/merge-patch+json")

    def bind(obj: dict[str, Any]) -> None:
        obj["spec"]["nodeName"] = "n1"

    store.mutate("pods", "default", "a", bind)
    store.delete("pods", "default", "a")
    assert summary(await drain(by_label, 1)) == [("DELETED", "a")]
    assert summary(await drain(by_node, 2)) == [("ADDED", "a"), ("DELETED", "a")]
    by_label.close()
    by_node.close()
    assert store.watcher_count() == 0


async def test_slow_watcher_does_not_block_writers(store: Store) -> None:
    watch = store.watch("pods")
    for i in range(1000):
        store.create("pods", pod(f"p{i}"))
    assert watch.pending() == 1000
    events = await drain(watch, 1000)
    assert events[-1].object["metadata"]["name"] == "p999"
    watch.close()


async def test_close_ends_a_waiting_iterator(store: Store) -> None:
    watch = store.watch("pods")

    async def consume() -> list[WatchEvent]:
        return [e async for e in watch]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    watch.close()
    assert await asyncio.wait_for(task, 1) == []


async def test_watch_event_objects_are_private(store: Store) -> None:
    watch = store.watch("pods")
    store.create("pods", pod("a"))
    (event,) = await drain(watch, 1)
    event.object["spec"]["containers"].clear()
    assert store.get("pods", "default", "a")["spec"]["containers"]
    watch.close()
