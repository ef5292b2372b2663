"""Nothing stays IN_PROGRESS: deadlines fail rows with a reason, a dead conductor's rows
are taken over, a message lost with its process is recovered, and bays hosted by a dead
conductor are re-hosted. Rows are put in those states directly, as a crash leaves them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bayport.db.base import utcnow
from bayport.db.models import BayRow, ConductorRow
from bayport.drivers.local import LocalDriver
from tests.stack import Stack, kube_get, kube_post


async def _row(stack: Stack, baymodel: str, **values: object) -> str:
    async with stack.state.sessionmaker() as session:
        row = BayRow(name="crashed", project_id="admin", user_id="admin", baymodel_id=baymodel,
                     node_count=1, master_count=1, create_timeout=60, **values)
        session.add(row)
        await session.commit()
        return row.uuid


async def _ghost(stack: Stack) -> str:
    async with stack.state.sessionmaker() as session:
        session.add(ConductorRow(id="ghost-1", hostname="gone", pid=1,
                                 heartbeat_at=utcnow() - timedelta(minutes=5)))
        await session.commit()
    return "ghost-1"


async def _status(stack: Stack, uuid: str, want: str, timeout: float = 10.0) -> dict[str, object]:
    async with stack.client() as c:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            body: dict[str, object] = (await c.get(f"/v1/bays/{uuid}")).json()
            if body.get("status") == want:
                return body
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.05)


async def test_past_deadline_fails_with_reason(stack: Stack) -> None:
    async with stack.client() as c:
        tm = await stack.baymodel(c, "k8s")
    uuid = await _row(stack, tm["uuid"], status="UPDATE_IN_PROGRESS", conductor_id="ghost-1",
                      deadline_at=utcnow() - timedelta(seconds=1))
    await stack.conductor.recovery.sweep_once()
    body = await _status(stack, uuid, "UPDATE_FAILED")
    assert "timed out after 60 minutes" in str(body["status_reason"])


async def test_dead_conductors_create_is_taken_over(stack: Stack) -> None:
    async with stack.client() as c:
        tm = await stack.baymodel(c, "k8s")
    ghost = await _ghost(stack)
    uuid = await _row(stack, tm["uuid"], status="CREATE_IN_PROGRESS", conductor_id=ghost,
                      deadline_at=utcnow() + timedelta(minutes=5))
    await stack.conductor.recovery.sweep_once()
    body = await _status(stack, uuid, "CREATE_COMPLETE")
    assert "taken over" in str(body["status_reason"]) and ghost in str(body["status_reason"])


async def test_lost_message_is_recovered(stack: Stack) -> None:
    async with stack.client() as c:
        tm = await stack.baymodel(c, "k8s")
    started = stack.conductor.recovery.started_at
    uuid = await _row(stack, tm["uuid"], status="DELETE_IN_PROGRESS", conductor_id=None,
                      created_at=started - timedelta(minutes=1), deadline_at=utcnow() + timedelta(minutes=5))
    await stack.conductor.recovery.sweep_once()
    async with stack.client() as c:
        await stack.wait_bay(c, uuid, gone=True)


async def test_bay_of_a_dead_host_is_rehosted(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s")
        bay = await stack.bay(c, "k8s")
        ghost = await _ghost(stack)
        config = (await c.get(f"/v1/bays/{bay['uuid']}/config")).text
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "survivor"},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        made = await kube_post(config, "/api/v1/namespaces/default/pods", pod)
        assert made.status_code == 201, made.text
        # The host died: its cluster stopped, its state stayed.
        local = stack.conductor.drivers.get("local")
        assert isinstance(local, LocalDriver)
        await local.delete_local(bay["uuid"])
        async with stack.state.sessionmaker() as session:
            row = await session.get(BayRow, bay["uuid"])
            assert row is not None
            row.host = ghost
            await session.commit()
        await stack.conductor.recovery.sweep_once()
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            body = (await c.get(f"/v1/bays/{bay['uuid']}")).json()
            if "re-hosted" in (body["status_reason"] or ""):
                break
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.05)
        assert body["status"] == "CREATE_COMPLETE"
        nodes = await kube_get((await c.get(f"/v1/bays/{bay['uuid']}/config")).text, "/api/v1/nodes")
        assert nodes.status_code == 200 and len(nodes.json()["items"]) == 2
        # Same address, same credentials, same objects.
        again = await kube_get(config, "/api/v1/namespaces/default/pods/survivor")
        assert again.status_code == 200 and again.json()["metadata"]["uid"] == made.json()["metadata"]["uid"]
        assert "objects restored" in body["status_reason"]
