"""End to end below the API: the conductor's BayOperations on a real SQLite database driving the
heat driver (configured from BAYPORT_OS_* as in production) against the fake OpenStack, and the
kubeconfig driver against a real embedded cluster. The bay row is what the user sees."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import bayport.db.all_models  # noqa: F401  (every table on Base.metadata)
from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.conductor.bays import BayOperations
from bayport.conductor.registry import ConductorRegistry
from bayport.config import Settings
from bayport.db.base import Base, make_engine, make_sessionmaker, utcnow
from bayport.db.models import BayCredential, BayModelRow, BayRow
from bayport.drivers.registry import DriverRegistry
from tests.drivers.fake_openstack import FakeOpenStack

PROJECT, USER = "p-e2e", "u-e2e"


@dataclass
class Conductor:
    ops: BayOperations
    sessionmaker: async_sessionmaker[AsyncSession]

    async def add_bay(self, driver: str, *, node_count: int = 2, timeout: timedelta | None = None,
                      baymodel: dict[str, Any] | None = None, labels: dict[str, str] | None = None) -> str:
        model_uuid, bay_uuid = str(uuid.uuid4()), str(uuid.uuid4())
        async with self.sessionmaker() as session:
            session.add(BayModelRow(uuid=model_uuid, name="tmpl", project_id=PROJECT, user_id=USER,
                                    driver=driver, **(baymodel or {})))
            session.add(BayRow(uuid=bay_uuid, name="e2ebay", project_id=PROJECT, user_id=USER,
                               baymodel_id=model_uuid, node_count=node_count, create_timeout=30,
                               labels=labels or {}, status="CREATE_IN_PROGRESS",
                               deadline_at=utcnow() + (timeout or timedelta(minutes=30))))
            await session.commit()
        return bay_uuid

    async def row(self, uuid_: str) -> BayRow | None:
        async with self.sessionmaker() as session:
            return await session.get(BayRow, uuid_)

    async def credential(self, uuid_: str) -> BayCredential | None:
        async with self.sessionmaker() as session:
            return await session.get(BayCredential, uuid_)

    async def start(self, uuid_: str, status: str, **values: Any) -> None:
        """What the API does before casting: the new status, the desired values, a deadline."""
        async with self.sessionmaker() as session:
            row = await session.get(BayRow, uuid_)
            assert row is not None
            row.status = status
            row.deadline_at = utcnow() + timedelta(minutes=30)
            for key, value in values.items():
                setattr(row, key, value)
            await session.commit()


HEAT_BAYMODEL = {"image_id": "debian-12", "keypair_id": "ops", "external_network_id": "public",
                 "flavor_id": "m1.small"}


@pytest.fixture
async def conductor(tmp_path: Path, openstack: FakeOpenStack,
                    monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Conductor]:
    for name, value in {"AUTH_URL": f"{openstack.url}/v3", "USERNAME": openstack.username,
                        "PASSWORD": openstack.password, "PROJECT_NAME": openstack.project_name,
                        "REGION_NAME": openstack.region, "HEAT_POLL_INTERVAL": "0.01"}.items():
        monkeypatch.setenv(f"BAYPORT_OS_{name}", value)
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'bayport.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessionmaker = make_sessionmaker(engine)
    registry = ConductorRegistry(sessionmaker, interval=1.0)
    await registry.register()
    drivers = DriverRegistry(Settings(data_dir=tmp_path / "data",
                                      cluster_allowed_networks=["127.0.0.0/8"]))

    async def forward(host: str, method: str, args: dict[str, Any]) -> None:
        raise AssertionError(f"heat and kubeconfig bays are never forwarded ({method} to {host})")

    try:
        yield Conductor(BayOperations(sessionmaker, drivers, registry, forward), sessionmaker)
    finally:
        await drivers.close()
        await registry.unregister()
        await engine.dispose()


async def test_a_heat_bay_goes_from_in_progress_to_complete(
        conductor: Conductor, openstack: FakeOpenStack) -> None:
    openstack.polls = 5
    bay = await conductor.add_bay("heat", baymodel=HEAT_BAYMODEL)

    task = asyncio.create_task(conductor.ops.create(bay))
    while not openstack.live_stacks() or openstack.live_stacks()[0].shows < 2:
        await asyncio.sleep(0.005)
    during = await conductor.row(bay)
    assert during is not None and during.status == "CREATE_IN_PROGRESS"
    assert during.conductor_id == conductor.ops.me
    await task

    row = await conductor.row(bay)
    [stack] = openstack.live_stacks()
    assert row is not None and row.status == "CREATE_COMPLETE", row and row.status_reason
    assert row.status_reason == f"created; Heat stack {stack.name} ({stack.id})"
    assert row.stack_id == stack.id
    assert row.api_address == "https://172.24.4.10:6443"
    assert row.master_addresses == ["172.24.4.10"]
    assert row.node_addresses == ["172.24.4.100", "172.24.4.101"]
    assert (row.conductor_id, row.deadline_at, row.host) == (None, None, None)
    cred = await conductor.credential(bay)
    assert cred is not None and cred.token == stack.admin_token and cred.ca_data
    [post] = openstack.heat_requests("POST")
    assert post.body["stack_name"] == f"e2ebay-{bay[:8]}"
    assert post.body["parameters"]["number_of_minions"] == 2


async def test_a_failing_heat_bay_ends_create_failed_with_heats_reason(
        conductor: Conductor, openstack: FakeOpenStack) -> None:
    reason = "Resource CREATE failed: Forbidden: Quota exceeded for floatingip, requested 3"
    openstack.create_failure = reason
    bay = await conductor.add_bay("heat", baymodel=HEAT_BAYMODEL)

    await conductor.ops.create(bay)

    row = await conductor.row(bay)
    assert row is not None and row.status == "CREATE_FAILED"
    assert row.status_reason is not None and reason in row.status_reason
    assert "CREATE_FAILED" in row.status_reason


async def test_heat_answering_503_is_retried_by_the_conductor(
        conductor: Conductor, openstack: FakeOpenStack) -> None:
    openstack.unavailable = 4
    bay = await conductor.add_bay("heat", baymodel=HEAT_BAYMODEL)

    await conductor.ops.create(bay)

    row = await conductor.row(bay)
    assert row is not None and row.status == "CREATE_COMPLETE", row and row.status_reason
    assert openstack.unavailable == 0
    assert len(openstack.live_stacks()) == 1


async def test_a_heat_bay_past_its_deadline_fails_with_the_timeout(
        conductor: Conductor, openstack: FakeOpenStack) -> None:
    openstack.polls = 10_000
    bay = await conductor.add_bay("heat", baymodel=HEAT_BAYMODEL, timeout=timedelta(seconds=0.5))

    await conductor.ops.create(bay)

    row = await conductor.row(bay)
    assert row is not None and row.status == "CREATE_FAILED"
    assert row.status_reason == "timed out after 30 minutes (create_timeout)"


async def test_a_heat_bay_is_resized_then_deleted(conductor: Conductor, openstack: FakeOpenStack) -> None:
    bay = await conductor.add_bay("heat", baymodel=HEAT_BAYMODEL)
    await conductor.ops.create(bay)

    await conductor.start(bay, "UPDATE_IN_PROGRESS", node_count=4)
    await conductor.ops.update(bay)
    row = await conductor.row(bay)
    assert row is not None and row.status == "UPDATE_COMPLETE", row and row.status_reason
    assert len(row.node_addresses) == 4
    assert [r.body["parameters"] for r in openstack.heat_requests("PATCH")] == [{"number_of_minions": 4}]

    openstack.delete_failures = ["Resource DELETE failed: Conflict: port 9e2 is in use"]
    await conductor.start(bay, "DELETE_IN_PROGRESS")
    await conductor.ops.delete(bay)
    row = await conductor.row(bay)
    assert row is not None and row.status == "DELETE_FAILED"
    assert row.status_reason is not None and "port 9e2 is in use" in row.status_reason

    await conductor.start(bay, "DELETE_IN_PROGRESS")
    await conductor.ops.delete(bay)
    assert await conductor.row(bay) is None
    assert openstack.live_stacks() == []


async def test_a_heat_bay_without_openstack_settings_fails_with_what_is_missing(
        conductor: Conductor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAYPORT_OS_AUTH_URL")
    bay = await conductor.add_bay("heat", baymodel=HEAT_BAYMODEL)
    await conductor.ops.create(bay)
    row = await conductor.row(bay)
    assert row is not None and row.status == "CREATE_FAILED"
    assert row.status_reason == "the heat driver is not configured: set BAYPORT_OS_AUTH_URL"


async def test_a_kubeconfig_bay_registers_an_embedded_cluster(conductor: Conductor, tmp_path: Path) -> None:
    cluster = EmbeddedCluster(ClusterSpec(name="existing", uid=str(uuid.uuid4()),
                                          token=secrets.token_urlsafe(16), node_count=3,
                                          data_dir=tmp_path / "cluster"))
    await cluster.start()
    try:
        kubeconfig = cluster.kubeconfig()
        bay = await conductor.add_bay(
            "kubeconfig", node_count=3, labels={"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()})
        await conductor.ops.create(bay)
        row = await conductor.row(bay)
        assert row is not None and row.status == "CREATE_COMPLETE", row and row.status_reason
        assert row.api_address == (cluster.https_url or cluster.url)
        assert sorted(row.node_addresses) == sorted(cluster.node_addresses())
        assert row.coe_version == cluster.spec.version
        cred = await conductor.credential(bay)
        assert cred is not None and cred.token == cluster.spec.token and cred.kubeconfig == kubeconfig

        await conductor.start(bay, "UPDATE_IN_PROGRESS", node_count=5)
        await conductor.ops.update(bay)
        row = await conductor.row(bay)
        assert row is not None and row.status == "UPDATE_FAILED"
        assert row.status_reason == "a registered cluster is resized by its own operator, not through Bayport"

        await conductor.start(bay, "DELETE_IN_PROGRESS")
        await conductor.ops.delete(bay)
        assert await conductor.row(bay) is None
        assert len(cluster.node_addresses()) == 3, "forgetting a registered cluster leaves it running"
    finally:
        await cluster.stop()
