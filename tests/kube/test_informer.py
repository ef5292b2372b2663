"""kube/informer.py against a Kubernetes-shaped HTTP server with faults (fake_watch_api) and a
real SQLite credentials row: a half-open watch times out and relists, a 410 storm relists with
back-off, a re-hosted bay is relisted from its new server for every consumer, a slow consumer
stalls nobody else, a raising consumer is retried for that object alone, bookmarks advance
the version unseen by consumers, and 10,000 create/delete cycles leave the store empty."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bayport.db.all_models  # noqa: F401
from bayport.db.base import Base, make_engine, make_sessionmaker
from bayport.db.models import BayCredential, BayModelRow, BayRow
from bayport.kube.client import ClusterClients
from bayport.kube.informer import Informers, Snapshot, Subscription
from tests.kube.fake_watch_api import FakeWatchAPI, serve


@dataclass
class Recorder:
    """A consumer that keeps what it was told: the pods it believes exist, and every call."""

    name: str = "rec"
    pods: dict[str, str] = field(default_factory=dict)   # name -> phase
    events: list[tuple[str, str]] = field(default_factory=list)
    snapshots: int = 0
    gate: asyncio.Event | None = None
    fail: Callable[[str, str], bool] | None = None
    attempts: dict[str, int] = field(default_factory=dict)

    async def on_snapshot(self, snapshot: Snapshot) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.snapshots += 1
        self.pods = {p.metadata.name: p.status.phase for p in snapshot.objects}

    async def on_event(self, event: str, obj: Any) -> None:
        name = obj.metadata.name
        if self.gate is not None:
            await self.gate.wait()
        self.attempts[name] = self.attempts.get(name, 0) + 1
        if self.fail is not None and self.fail(event, name):
            raise RuntimeError(f"consumer {self.name} refuses {name}")
        self.events.append((event, name))
        if event == "DELETED":
            self.pods.pop(name, None)
        else:
            self.pods[name] = obj.status.phase


@dataclass
class Env:
    sessions: async_sessionmaker[AsyncSession]
    bay_uuid: str
    clients: ClusterClients
    informers: Informers

    def subscribe(self, rec: Recorder) -> Subscription:
        return self.informers.subscribe(self.bay_uuid, Pod, rec.name, rec.on_snapshot, rec.on_event)

    async def point_at(self, api: FakeWatchAPI) -> None:
        async with self.sessions() as session:
            cred = await session.get(BayCredential, self.bay_uuid)
            assert cred is not None
            cred.server, cred.token = api.url, api.token
            await session.commit()


@contextlib.asynccontextmanager
async def environment(tmp_path: Path, api: FakeWatchAPI, **options: Any) -> AsyncIterator[Env]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'i.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        model = BayModelRow(project_id="p", user_id="u")
        session.add(model)
        await session.flush()
        bay = BayRow(project_id="p", user_id="u", baymodel_id=model.uuid, status="CREATE_COMPLETE")
        session.add(bay)
        await session.flush()
        session.add(BayCredential(bay_uuid=bay.uuid, server=api.url, token=api.token))
        await session.commit()
    clients = ClusterClients(sessions, timeout=2.0)
    informers = Informers(clients, **options)
    try:
        yield Env(sessions, bay.uuid, clients, informers)
    finally:
        await informers.close()
        await clients.close()
        await engine.dispose()


async def until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout}s: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bayport.kube.informer.RETRY_MAX", 0.2)


async def test_a_half_open_watch_times_out_and_relists(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI(stall_watches=1)) as api, \
            environment(tmp_path, api, inactivity=0.5) as env:
        api.add("before")
        rec = Recorder()
        sub = env.subscribe(rec)
        await asyncio.wait_for(sub.synced.wait(), 10)
        assert rec.pods == {"before": "Pending"}
        await until(lambda: api.watches == 1, "the watch request reached the server")
        api.add("during")      # the stalled watch will never tell
        await until(lambda: "during" in rec.pods, "the pod made during the stall")
        informer = sub.informer
        assert informer.stats.stalls == 1 and informer.stats.lists == 2 and rec.snapshots == 2
        api.add("after")       # and the new watch streams again
        await until(lambda: "after" in rec.pods, "a pod made after recovery")
        assert api.watch_params[-1]["allowWatchBookmarks"] == "true"
        assert 240 <= int(api.watch_params[-1]["timeoutSeconds"]) <= 300


async def test_a_410_storm_relists_with_backoff_then_streams(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI(gone_watches=20)) as api, environment(tmp_path, api) as env:
        api.add("p0")
        rec = Recorder()
        started = time.monotonic()
        sub = env.subscribe(rec)
        await until(lambda: api.gone_watches == 0 and api.open_watches == 1, "the storm passed")
        elapsed = time.monotonic() - started
        informer = sub.informer
        assert informer.stats.gone == 20
        assert api.lists == 21     # one relist per 410, no list loop beyond that
        # The first 410 relists at once; the next 19 wait at least half their back-off each
        # (0.05 s, then 0.1 s capped in this test): a storm cannot spin.
        assert elapsed >= 0.05 + 18 * 0.1
        api.add("p1")
        await until(lambda: "p1" in rec.pods, "an event after the storm")
        assert rec.pods == {"p0": "Pending", "p1": "Pending"}


async def test_a_rehosted_bay_is_relisted_for_every_consumer(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI(token="old")) as old, serve(FakeWatchAPI(token="new")) as new, \
            environment(tmp_path, old) as env:
        old.add("on-old")
        recs = [Recorder(name=n) for n in ("workloads", "jobs", "pod-network")]
        subs = [env.subscribe(r) for r in recs]
        for sub in subs:
            await asyncio.wait_for(sub.synced.wait(), 10)
        assert len(set(s.informer for s in subs)) == 1   # one informer, three consumers
        new.add("on-new")
        await env.point_at(new)
        old.token = "revoked"   # the old host refuses Bayport now: the watch is cut, re-read creds
        old.delete("on-old")    # (the old stream may or may not carry this before it ends)
        for stream in list(old._queues):
            stream.put_nowait((0, "ERROR", {"kind": "Status", "code": 500, "message": "host gone"}))
        await until(lambda: all(r.pods == {"on-new": "Pending"} for r in recs),
                    "every consumer sees the new cluster")
        assert subs[0].informer.stats.rehosts == 1 and new.lists == 1
        new.add("later")
        await until(lambda: all("later" in r.pods for r in recs), "events from the new host")


async def test_a_slow_consumer_stalls_nobody_and_is_resynced(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI()) as api, \
            environment(tmp_path, api, queue_limit=10) as env:
        gate = asyncio.Event()
        slow, fast1, fast2 = Recorder("slow"), Recorder("fast1"), Recorder("fast2")
        subs = [env.subscribe(r) for r in (slow, fast1, fast2)]
        for sub in subs:
            await asyncio.wait_for(sub.synced.wait(), 10)
        slow.gate = gate      # from now on it blocks on its first event
        for i in range(50):
            api.add(f"p{i}")
        await until(lambda: len(fast1.pods) == 50 and len(fast2.pods) == 50, "the fast consumers")
        assert slow.events == [] and subs[0].overflows >= 1 and len(subs[0]) <= 10
        gate.set()
        await until(lambda: len(slow.pods) == 50, "the slow consumer catches up from the store")
        assert slow.snapshots >= 2
        api.modify("p7")
        await until(lambda: all(r.pods.get("p7") == "Running" for r in (slow, fast1, fast2)),
                    "later events reach everyone")


async def test_a_raising_consumer_is_retried_for_that_object_alone(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI()) as api, environment(tmp_path, api) as env:
        flaky = Recorder("flaky", fail=lambda event, name: name == "bad" and flaky.attempts[name] <= 2)
        steady = Recorder("steady")
        subs = [env.subscribe(flaky), env.subscribe(steady)]
        for sub in subs:
            await asyncio.wait_for(sub.synced.wait(), 10)
        api.add("bad")
        api.add("good")
        await until(lambda: "good" in flaky.pods and "good" in steady.pods, "the other object")
        await until(lambda: "bad" in flaky.pods, "the failed object, retried")
        assert flaky.attempts["bad"] == 3 and flaky.attempts["good"] == 1
        assert subs[0].failing == 0 and steady.attempts["bad"] == 1
        api.delete("bad")
        await until(lambda: "bad" not in flaky.pods and "bad" not in steady.pods, "the deletion")
        assert subs[0].informer.stats.lists == 1   # the informer itself never noticed


async def test_bookmarks_advance_the_version_unseen_by_consumers(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI(bookmark_every=0.05)) as api, environment(tmp_path, api) as env:
        rec = Recorder()
        sub = env.subscribe(rec)
        await asyncio.wait_for(sub.synced.wait(), 10)
        await until(lambda: sub.informer.stats.bookmarks >= 3, "bookmarks")
        api.add("p")
        await until(lambda: "p" in rec.pods, "an event between bookmarks")
        assert rec.events == [("ADDED", "p")]


async def test_ten_thousand_create_delete_cycles_leave_the_caches_empty(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI()) as api, environment(tmp_path, api) as env:
        recs = [Recorder(name=n) for n in ("a", "b", "c")]
        subs = [env.subscribe(r) for r in recs]
        for sub in subs:
            await asyncio.wait_for(sub.synced.wait(), 10)
        for i in range(10_000):
            api.add(f"p{i}")
            api.delete(f"p{i}")
            if i % 500 == 0:
                await asyncio.sleep(0)
        await until(lambda: all(len(r.events) == 20_000 for r in recs), "every event", timeout=60)
        informer = subs[0].informer
        assert len(informer) == 0 and all(len(s) == 0 and s.failing == 0 for s in subs)
        api.history.clear()
        for sub in subs:
            await env.informers.unsubscribe(sub)
        assert list(env.informers) == []   # the last consumer gone: the informer and its store too


async def test_a_raising_snapshot_is_retried_and_the_others_are_served(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI()) as api, environment(tmp_path, api) as env:
        api.add("p0")
        refusals = [RuntimeError("database away"), RuntimeError("still away")]
        broken, steady = Recorder("broken"), Recorder("steady")
        handle = broken.on_snapshot

        async def on_snapshot(snapshot: Snapshot) -> None:
            if refusals:
                raise refusals.pop()
            await handle(snapshot)

        sub = env.informers.subscribe(env.bay_uuid, Pod, "broken", on_snapshot, broken.on_event)
        other = env.subscribe(steady)
        await asyncio.wait_for(other.synced.wait(), 10)
        await asyncio.wait_for(sub.synced.wait(), 10)
        assert not refusals and broken.pods == {"p0": "Pending"} == steady.pods
        assert sub.informer.stats.lists == 1


async def test_consumers_share_an_informer_when_they_ask_for_the_same_labels(tmp_path: Path) -> None:
    async with serve(FakeWatchAPI()) as api, environment(tmp_path, api) as env:
        recs = [Recorder(name=n) for n in ("a", "b", "c")]
        plain = env.subscribe(recs[0])
        labelled = [env.informers.subscribe(env.bay_uuid, Pod, r.name, r.on_snapshot, r.on_event,
                                            labels=("bayport.io/uuid",)) for r in recs[1:]]
        for sub in (plain, *labelled):
            await asyncio.wait_for(sub.synced.wait(), 10)
        assert labelled[0].informer is labelled[1].informer is not plain.informer
        assert len(env.informers.of_bay(env.bay_uuid)) == 2
        await until(lambda: len(api.watch_params) == 2, "both watches")
        assert sorted(p.get("labelSelector", "") for p in api.watch_params) == ["", "bayport.io/uuid"]
