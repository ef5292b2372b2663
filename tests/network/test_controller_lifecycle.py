"""The controller across restarts, namespaces and bays: a restart reconciles both ways, each
namespace gets its own /24 and loses it with the namespace, a deleted bay keeps nothing,
handling twice changes nothing, and a name reused at once never gets the old pod's port."""

from __future__ import annotations

import asyncio

from lightkube.resources.core_v1 import Namespace, Pod
from sqlalchemy import func, select

from bayport.db.network import IPAllocationRow, NetworkRow, SubnetRow
from bayport.network import ipam
from tests.kube.workload_helpers import cluster
from tests.network.controller_support import (
    controller,
    make_namespace,
    networked_bay,
    pod,
    pool_subnets,
    port_annotations,
    ports,
    wait_for,
    wait_pod,
)
from tests.stack import Stack


async def _count(stack: Stack, model: type, bay_uuid: str | None = None) -> int:
    stmt = select(func.count()).select_from(model)
    if bay_uuid is not None and hasattr(model, "bay_uuid"):
        stmt = stmt.where(model.bay_uuid == bay_uuid)  # type: ignore[attr-defined]
    async with stack.state.sessionmaker() as session:
        return int((await session.execute(stmt)).scalar_one())


async def test_restart_frees_the_port_of_a_pod_deleted_meanwhile_and_annotates_a_new_one(stack: Stack
                                                                                        ) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            await k8s.create(pod("old"))
            old = await wait_pod(k8s, "old")
            assert old.metadata is not None
            ctl = controller(stack)
            await ctl.stop()
            await k8s.delete(Pod, "old", namespace="default")
            await k8s.create(pod("new"))
            await asyncio.sleep(0.2)
            waiting = await k8s.get(Pod, "new", namespace="default")
            assert waiting.status is not None and waiting.status.phase == "Pending"
            assert waiting.metadata is not None and not waiting.metadata.annotations
            assert [p.device_id for p in await ports(stack, bay["uuid"])] == [old.metadata.uid]

            await ctl.start()
            new = await wait_pod(k8s, "new")
            assert new.metadata is not None and new.status is not None
            await ctl.settled(bay["uuid"])
            held = await ports(stack, bay["uuid"])
            assert [p.device_id for p in held] == [new.metadata.uid]
            assert new.status.podIP == held[0].ip_address == port_annotations(new)[0]["fixed_ips"][0][
                "ip_address"]


async def test_handling_again_changes_nothing(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            await asyncio.gather(*(k8s.create(pod(f"p{i}")) for i in range(4)))
            before = {p.metadata.name: p for p in [await wait_pod(k8s, f"p{i}") for i in range(4)]
                      if p.metadata is not None}
            ctl = controller(stack)
            await ctl.settled(bay["uuid"])
            held = {p.id for p in await ports(stack, bay["uuid"])}
            # Restart twice (a relist each time) and run every handler once more by hand.
            for _ in range(2):
                await ctl.stop()
                await ctl.start()
                await ctl.settled(bay["uuid"])
            network = ctl.bays[bay["uuid"]]
            for item in before.values():
                assert item.metadata is not None and item.metadata.uid is not None
                network.applied.clear()
                await network._ensure(item.metadata.uid)
            after = {p.metadata.name: p for p in [await k8s.get(Pod, n, namespace="default") for n in before]
                     if p.metadata is not None}
            for name, item in before.items():
                assert item.metadata is not None and after[name].metadata is not None
                assert after[name].metadata.annotations == item.metadata.annotations  # type: ignore[union-attr]
                assert after[name].metadata.resourceVersion == item.metadata.resourceVersion  # type: ignore[union-attr]
            assert {p.id for p in await ports(stack, bay["uuid"])} == held
            assert await _count(stack, IPAllocationRow) == 4


async def test_namespaces_get_their_own_subnet_and_lose_it_with_the_namespace(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            await make_namespace(k8s, "team-a")
            await make_namespace(k8s, "team-b")
            await asyncio.gather(k8s.create(pod("a1", "team-a")), k8s.create(pod("a2", "team-a")),
                                 k8s.create(pod("b1", "team-b")))
            a1, a2 = await wait_pod(k8s, "a1", "team-a"), await wait_pod(k8s, "a2", "team-a")
            b1 = await wait_pod(k8s, "b1", "team-b")
            subnet_a, subnet_b = port_annotations(a1)[1], port_annotations(b1)[1]
            assert port_annotations(a2)[1] == subnet_a
            expected = {str(n) for n in await pool_subnets(stack, bay["uuid"])}
            assert {subnet_a["cidr"], subnet_b["cidr"]} == expected
            assert subnet_a["network_id"] != subnet_b["network_id"]
            assert a1.status is not None and b1.status is not None
            assert a1.status.podIP is not None and a1.status.podIP.startswith(subnet_a["cidr"][:9])

            await k8s.delete(Namespace, "team-a")

            async def team_a_gone() -> bool:
                async with stack.state.sessionmaker() as session:
                    return await ipam.get_namespace_network(session, bay["uuid"], "team-a") is None

            await wait_for(team_a_gone, "team-a's network freed")
            assert [p.name for p in await ports(stack, bay["uuid"])] == ["b1"]
            # The freed /24 is the next namespace's.
            await make_namespace(k8s, "team-c")
            await k8s.create(pod("c1", "team-c"))
            c1 = await wait_pod(k8s, "c1", "team-c")
            assert port_annotations(c1)[1]["cidr"] == subnet_a["cidr"]


async def test_a_namespace_deleted_while_the_controller_is_down_loses_its_network_on_restart(
        stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            await make_namespace(k8s, "short-lived")
            await k8s.create(pod("x", "short-lived"))
            await wait_pod(k8s, "x", "short-lived")
            ctl = controller(stack)
            await ctl.stop()
            await k8s.delete(Namespace, "short-lived")
            await wait_for(lambda: _namespace_absent(k8s, "short-lived"), "namespace finalized")
            assert await _count(stack, NetworkRow, bay["uuid"]) == 1
            await ctl.start()
            await ctl.settled(bay["uuid"])
            await wait_for(lambda: _no_networks(stack, bay["uuid"]), "network freed after restart")
            assert not await ports(stack, bay["uuid"])


async def _namespace_absent(k8s: object, name: str) -> bool:
    names = [n.metadata.name async for n in k8s.list(Namespace) if n.metadata]  # type: ignore[attr-defined]
    return name not in names


async def _no_networks(stack: Stack, bay_uuid: str) -> bool:
    return await _count(stack, NetworkRow, bay_uuid) == 0


async def test_a_name_reused_at_once_gets_a_new_port_never_the_old_one(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            for _ in range(5):
                await k8s.create(pod("same"))
                await k8s.delete(Pod, "same", namespace="default")
            await k8s.create(pod("same"))
            last = await wait_pod(k8s, "same")
            assert last.metadata is not None and last.status is not None
            await controller(stack).settled(bay["uuid"])
            held = await ports(stack, bay["uuid"])
            assert [p.device_id for p in held] == [last.metadata.uid]
            port, _, port_id = port_annotations(last)
            assert port_id == held[0].id and port["device_id"] == last.metadata.uid
            assert last.status.podIP == held[0].ip_address


async def test_deleting_the_bay_frees_all_its_networks(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
        async with cluster(stack, bay["uuid"]) as k8s:
            await make_namespace(k8s, "other")
            await asyncio.gather(k8s.create(pod("a")), k8s.create(pod("b", "other")))
            await wait_pod(k8s, "a")
            await wait_pod(k8s, "b", "other")
        assert await _count(stack, NetworkRow, bay["uuid"]) == 2
        assert (await c.delete(f"/v1/bays/{bay['uuid']}")).status_code == 204
        await stack.wait_bay(c, bay["uuid"], gone=True)
        for model in (NetworkRow, SubnetRow, IPAllocationRow):
            assert await _count(stack, model) == 0, model
        assert not await ports(stack, bay["uuid"])
        assert bay["uuid"] not in controller(stack).bays
