"""conductor/watch.py against a real embedded cluster over HTTP and a real SQLite database:
rows follow their objects, a watch resumes after a disconnect and relists after 410 Gone, a
re-hosted bay is picked up from its new credentials, and ownership is decided per conductor."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Pod, ReplicationController, Service
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bayport.db.all_models  # noqa: F401
from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.conductor.registry import ConductorRegistry
from bayport.conductor.watch import BayWatch, RowWriter, Watches
from bayport.db.base import Base, make_engine, make_sessionmaker, utcnow
from bayport.db.models import BayCredential, BayModelRow, BayRow, ConductorRow
from bayport.db.workloads import WorkloadRow
from bayport.kube.client import ClusterAccess, ClusterClients, make_client
from bayport.kube.kinds import POD, RC, SERVICE, labelled, prepare, to_resource
from bayport.objects.ownership import rendezvous_owner
from tests.kube.workload_helpers import manifest


@dataclass
class Env:
    sessions: async_sessionmaker[AsyncSession]
    cluster: EmbeddedCluster
    bay_uuid: str
    clients: ClusterClients
    k8s: AsyncClient


async def start_cluster(name: str = "w") -> EmbeddedCluster:
    cluster = EmbeddedCluster(ClusterSpec(name=name, uid=name, token=f"{name}-token", node_count=2))
    await cluster.start()
    return cluster


@contextlib.asynccontextmanager
async def environment(tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = make_sessionmaker(engine)
    cluster = await start_cluster()
    async with sessions() as session:
        model = BayModelRow(project_id="p", user_id="u")
        session.add(model)
        await session.flush()
        bay = BayRow(project_id="p", user_id="u", baymodel_id=model.uuid, status="CREATE_COMPLETE")
        session.add(bay)
        await session.flush()
        session.add(BayCredential(bay_uuid=bay.uuid, server=cluster.url, token=cluster.spec.token))
        await session.commit()
    clients = ClusterClients(sessions)
    k8s = make_client(ClusterAccess(server=cluster.url, token=cluster.spec.token))
    try:
        yield Env(sessions, cluster, bay.uuid, clients, k8s)
    finally:
        await k8s.close()
        await clients.close()
        await cluster.stop()
        await engine.dispose()


async def add_row(env: Env, kind: str, name: str, status: str = "Pending") -> str:
    async with env.sessions() as session:
        row = WorkloadRow(kind=kind, project_id="p", user_id="u", bay_uuid=env.bay_uuid, name=name,
                          namespace="default", status=status)
        session.add(row)
        await session.commit()
        return row.uuid


async def create_object(env: Env, kind: Any, name: str, uuid: str, k8s: AsyncClient | None = None,
                        **extra: Any) -> None:
    body = prepare(manifest(kind.kind, name, **extra), kind).body
    await (k8s or env.k8s).create(to_resource(labelled(body, uuid, "default"), kind))


async def row_of(env: Env, uuid: str) -> WorkloadRow:
    async with env.sessions() as session:
        row = await session.get(WorkloadRow, uuid)
    assert row is not None
    return row


async def until(env: Env, uuid: str, done: Callable[[WorkloadRow], bool], timeout: float = 10.0
                ) -> WorkloadRow:
    deadline = time.monotonic() + timeout
    while True:
        row = await row_of(env, uuid)
        if done(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"row {uuid} stuck at {row.status} {row.status_reason}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def watching(env: Env) -> AsyncIterator[tuple[BayWatch, RowWriter]]:
    writer = RowWriter(env.sessions)
    writer.start()
    watch = BayWatch(env.bay_uuid, env.clients, writer, env.sessions)
    watch.start()
    try:
        await asyncio.wait_for(watch.wait_synced(), 10)
        yield watch, writer
    finally:
        await watch.stop()
        await writer.close()


async def test_rows_follow_their_objects(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, watching(env):
        pod, svc, rc = (await add_row(env, "Pod", "p"), await add_row(env, "Service", "s"),
                        await add_row(env, "ReplicationController", "r"))
        await create_object(env, POD, "p", pod)
        await create_object(env, SERVICE, "s", svc)
        await create_object(env, RC, "r", rc, replicas=3)
        await create_object(env, POD, "stranger", "no-such-row")
        running = await until(env, pod, lambda r: r.status == "Running")
        assert running.host and running.host.startswith("w-node-") and running.pod_ip
        service = await until(env, svc, lambda r: r.ip is not None)
        assert service.status == "Active" and service.ports and service.ports[0]["port"] == 80
        ready = await until(env, rc, lambda r: r.ready_replicas == 3)
        assert ready.status == "Running" and ready.replicas == 3
        await env.k8s.delete(Pod, "p", namespace="default")
        gone = await until(env, pod, lambda r: r.status == "Deleted")
        assert gone.deleted_at is not None and "not through Bayport" in (gone.status_reason or "")
        # A row Bayport is deleting is not overwritten by what the watch sees meanwhile.
        async with env.sessions() as session:
            await session.execute(update(WorkloadRow).where(WorkloadRow.uuid == rc).values(status="Deleting"))
            await session.commit()
        await env.k8s.patch(ReplicationController, "r", {"spec": {"replicas": 1}}, namespace="default")
        await env.k8s.delete(Service, "s", namespace="default")
        await until(env, svc, lambda r: r.status == "Deleted")
        assert (await row_of(env, rc)).status == "Deleting"


async def test_watch_resumes_after_a_disconnect_and_relists_after_410(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, watching(env):
        kept, lost = await add_row(env, "Pod", "kept"), await add_row(env, "Pod", "lost")
        late = await add_row(env, "Pod", "late", status="Creating")  # its object comes later
        await create_object(env, POD, "kept", kept)
        await create_object(env, POD, "lost", lost)
        await until(env, lost, lambda r: r.status == "Running")
        port = int(env.cluster.url.rsplit(":", 1)[1])
        server = env.cluster._server
        # Disconnect: events that happen meanwhile are replayed from the last resourceVersion.
        await server.stop()
        env.cluster.store.delete("pods", "default", "kept")
        await server.start("127.0.0.1", port)
        await until(env, kept, lambda r: r.status == "Deleted")
        # Disconnect long enough for the history to move past the watch: 410, relist; the DELETED
        # event of "lost" is compacted away, the relist finds the row's object missing.
        await server.stop()
        env.cluster.store.delete("pods", "default", "lost")
        for i in range(10_050):
            env.cluster.store.create("events", {
                "metadata": {"name": f"e{i}", "namespace": "default"}, "reason": "Filler",
                "message": "history", "type": "Normal",
                "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"}})
        await server.start("127.0.0.1", port)
        await until(env, lost, lambda r: r.status == "Deleted")
        await create_object(env, POD, "late", late)
        await until(env, late, lambda r: r.status == "Running")


async def test_a_rehosted_bay_is_followed_through_its_new_credentials(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, watching(env):
        pod = await add_row(env, "Pod", "p")
        await create_object(env, POD, "p", pod)
        await until(env, pod, lambda r: r.status == "Running")
        # The conductor that hosted the cluster died; another host re-created it empty.
        replacement = await start_cluster("w2")
        try:
            async with env.sessions() as session:
                cred = await session.get(BayCredential, env.bay_uuid)
                assert cred is not None
                cred.server, cred.token = replacement.url, replacement.spec.token
                await session.commit()
            await env.cluster.stop()
            row = await until(env, pod, lambda r: r.status == "Deleted")
            assert row.deleted_at is not None
            again = await add_row(env, "Pod", "p")
            k8s = make_client(ClusterAccess(server=replacement.url, token=replacement.spec.token))
            try:
                await create_object(env, POD, "p", again, k8s=k8s)
            finally:
                await k8s.close()
            await until(env, again, lambda r: r.status == "Running" and (r.host or "").startswith("w2-"))
        finally:
            await replacement.stop()


async def test_the_writer_coalesces_a_burst_into_one_statement(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = make_sessionmaker(engine)
    updates: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *a: updates.append(statement)
                 if statement.startswith("UPDATE workloads") else None)
    async with sessions() as session:
        model = BayModelRow(project_id="p", user_id="u")
        session.add(model)
        await session.flush()
        bay = BayRow(project_id="p", user_id="u", baymodel_id=model.uuid)
        session.add(bay)
        await session.flush()
        rows = [WorkloadRow(kind="Pod", project_id="p", user_id="u", bay_uuid=bay.uuid, name=f"p{i}",
                            status="Pending") for i in range(3)]
        session.add_all(rows)
        await session.commit()
    writer = RowWriter(sessions)
    writer.start()
    try:
        for step in ("Pending", "ContainerCreating", "Running"):
            for row in rows:
                writer.observed(row.uuid, {"status": step, "host": "n1", "pod_ip": None})
        await writer.flush()
        assert len(updates) == 1  # three rows, three states each: one executemany
        writer.observed(rows[0].uuid, {"status": "Running", "host": "n1", "pod_ip": None})
        await writer.flush()
        assert len(updates) == 1  # nothing new, nothing written
        writer.gone(rows[1].uuid)
        await writer.flush()
        async with sessions() as session:
            states = {r.name: r.status for r in (await session.execute(
                WorkloadRow.__table__.select())).all()}
        assert states == {"p0": "Running", "p1": "Deleted", "p2": "Running"}
    finally:
        await writer.close()
        await engine.dispose()


def test_rendezvous_spreads_bays_and_moves_few_when_a_conductor_goes() -> None:
    conductors = [f"c{i}" for i in range(4)]
    bays = [f"bay-{i}" for i in range(400)]
    owners = {b: rendezvous_owner(b, conductors) for b in bays}
    counts = {c: sum(1 for o in owners.values() if o == c) for c in conductors}
    assert all(60 <= n <= 140 for n in counts.values()), counts
    after = {b: rendezvous_owner(b, conductors[:3]) for b in bays}
    moved = [b for b in bays if owners[b] != after[b]]
    assert all(owners[b] == "c3" for b in moved)  # only the gone conductor's bays move
    assert rendezvous_owner("x", []) is None


async def test_watches_start_for_owned_healthy_bays_only(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = make_sessionmaker(engine)
    registry = ConductorRegistry(sessions, 0.5, conductor_id="me")
    async with sessions() as session:
        session.add_all([ConductorRow(id="me", hostname="h", pid=1),
                         ConductorRow(id="other", hostname="h", pid=2, heartbeat_at=utcnow())])
        model = BayModelRow(project_id="p", user_id="u")
        session.add(model)
        await session.flush()
        specs = {"hosted-here": ("me", "CREATE_COMPLETE"), "hosted-there": ("other", "CREATE_COMPLETE"),
                 "deleting": ("me", "DELETE_IN_PROGRESS"), "failed": ("me", "CREATE_FAILED")}
        for i in range(20):
            specs[f"remote-{i}"] = (None, "UPDATE_COMPLETE")
        uuids = {}
        for name, (host, status) in specs.items():
            bay = BayRow(name=name, project_id="p", user_id="u", baymodel_id=model.uuid, host=host,
                         status=status)
            session.add(bay)
            await session.flush()
            uuids[name] = bay.uuid
        await session.commit()
    clients = ClusterClients(sessions)
    watches = Watches(sessions, clients, registry)
    try:
        await watches.sweep()
        names = {n for n, u in uuids.items() if u in watches.bays}
        remote_mine = {f"remote-{i}" for i in range(20)
                       if rendezvous_owner(uuids[f"remote-{i}"], {"me", "other"}) == "me"}
        assert names == {"hosted-here"} | remote_mine
        assert 0 < len(remote_mine) < 20
        assert await watches.ensure(uuids["hosted-there"]) is None
        assert await watches.ensure(uuids["failed"]) is None
        await watches.stop(uuids["hosted-here"])
        assert uuids["hosted-here"] not in watches.bays
    finally:
        await watches.close()
        await clients.close()
        await engine.dispose()


@pytest.fixture(autouse=True)
def _quiet_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect quickly in these tests (production backs off to 5 s)."""
    monkeypatch.setattr("bayport.kube.informer.RETRY_MAX", 0.2)


async def test_relist_retires_rows_whose_create_was_abandoned(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        fresh = await add_row(env, "Pod", "fresh", status="Creating")
        abandoned = await add_row(env, "Pod", "abandoned", status="Creating")
        async with env.sessions() as session:
            await session.execute(update(WorkloadRow).where(WorkloadRow.uuid == abandoned)
                                  .values(created_at=utcnow() - timedelta(hours=1)))
            await session.commit()
        async with watching(env) as (_, writer):
            await writer.flush()
            row = await until(env, abandoned, lambda r: r.status == "Deleted")
            assert "interrupted" in (row.status_reason or "")
            assert (await row_of(env, fresh)).status == "Creating"


async def test_rows_a_lost_create_left_behind_are_settled_without_a_relist(tmp_path: Path) -> None:
    """After the watch synced (no relist to come), rows left Creating or Unknown past the bound
    are checked with the cluster: no object → failed, name free; an object of theirs → finished."""
    async with environment(tmp_path) as env, watching(env) as (watch, writer):
        lost = await add_row(env, "Pod", "lost", status="Creating")
        timed_out = await add_row(env, "Pod", "timedout", status="Unknown")
        made = await add_row(env, "Pod", "made", status="Creating")
        fresh = await add_row(env, "Pod", "fresh", status="Creating")
        async with env.sessions() as session:
            await session.execute(update(WorkloadRow).where(WorkloadRow.uuid.in_([lost, timed_out, made]))
                                  .values(created_at=utcnow() - timedelta(minutes=2)))
            await session.commit()
        watch.never_created_after = 60
        await watch.stop()          # no events: only the settling can finish "made"
        await create_object(env, POD, "made", made)
        watch.synced = {k: asyncio.Event() for k in watch.synced}
        for event_ in watch.synced.values():
            event_.set()
        await watch.settle_lost()
        await writer.flush()
        for uuid in (lost, timed_out):
            row = await row_of(env, uuid)
            assert row.status == "Deleted" and row.deleted_at is not None, row.status
            assert "name is free" in (row.status_reason or "")
        finished = await row_of(env, made)
        assert finished.deleted_at is None and finished.k8s_uid is not None
        assert (await row_of(env, fresh)).status == "Creating"
        await add_row(env, "Pod", "lost", status="Creating")   # the name is free again
