"""Ports: a pod's address and MAC, one per (bay, device_id = pod uid).

The controller calls ``create_port`` when it sees a pod without one (then writes
``records.pod_annotations`` on the pod) and ``release_port_by_device`` when the pod
is deleted; its start-up reconcile uses ``list_ports``. Every call works in the
caller's transaction and is idempotent, so a handler that runs twice changes nothing.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.db.base import new_uuid, utcnow
from bayport.network.ipam.addresses import random_mac
from bayport.network.ipam.allocator import allocator_for
from bayport.network.ipam.networks import DEFAULT_POD_POOL, DEFAULT_PREFIX, ensure_namespace_network
from bayport.network.ipam.records import DEVICE_OWNER, PortRecord
from bayport.network.ipam.statements import PORTS, execute, first_row, statements

# 2**24 MACs under fa:16:3e: a fresh random one collides with probability ports/2**24,
# so a handful of tries is plenty even with a million ports.
MAC_ATTEMPTS = 8
PORT_STATUSES = frozenset({"ACTIVE", "DOWN"})


async def create_port(
    session: AsyncSession, *, bay_uuid: str, project_id: str, namespace: str, name: str,
    device_id: str, host_id: str | None = None, pod_pool: str = DEFAULT_POD_POOL,
    prefix: int = DEFAULT_PREFIX,
) -> PortRecord:
    """The pod's port in its namespace network: the existing one for this device_id, or
    a new one with the next address and a fresh MAC."""
    _, subnet = await ensure_namespace_network(session, bay_uuid, project_id, namespace,
                                               pod_pool=pod_pool, prefix=prefix)
    existing = await get_port_by_device(session, bay_uuid, device_id)
    if existing is not None:
        return existing
    allocator = allocator_for(session)
    port_id = new_uuid()
    address = await allocator.allocate(session, subnet.id, port_id=port_id)
    insert_port = statements(session).insert_port
    for _ in range(MAC_ATTEMPTS):
        row = await first_row(session, insert_port, {
            "id": port_id, "name": name, "network_id": subnet.network_id,
            "project_id": project_id, "bay_uuid": bay_uuid, "namespace": namespace,
            "mac_address": random_mac(),
            "fixed_ips": [{"subnet_id": subnet.id, "ip_address": address}],
            "device_owner": DEVICE_OWNER, "device_id": device_id, "host_id": host_id,
            "status": "ACTIVE", "admin_state_up": True, "created_at": utcnow(),
        })
        if row is not None:
            return PortRecord.of(row._mapping)
        existing = await get_port_by_device(session, bay_uuid, device_id)
        if existing is not None:
            # Another controller created it first: give our address back.
            await allocator.release(session, subnet.id, address, port_id=port_id)
            return existing
    raise errors.TemporaryError(f"no free MAC address found in {MAC_ATTEMPTS} tries", delay=0.0)


async def get_port(session: AsyncSession, port_id: str) -> PortRecord:
    row = await first_row(session, select(PORTS).where(PORTS.c.id == port_id))
    if row is None:
        raise errors.NotFound(f"port {port_id} not found", port_id=port_id)
    return PortRecord.of(row._mapping)


async def get_port_by_device(session: AsyncSession, bay_uuid: str, device_id: str) -> PortRecord | None:
    row = await first_row(session, statements(session).port_of_device,
                          {"bay": bay_uuid, "device": device_id})
    return None if row is None else PortRecord.of(row._mapping)


async def list_ports(session: AsyncSession, bay_uuid: str, namespace: str | None = None,
                     device_id: str | None = None) -> list[PortRecord]:
    stmt = select(PORTS).where(PORTS.c.bay_uuid == bay_uuid)
    if namespace is not None:
        stmt = stmt.where(PORTS.c.namespace == namespace)
    if device_id is not None:
        stmt = stmt.where(PORTS.c.device_id == device_id)
    result = await execute(session, stmt.order_by(PORTS.c.created_at, PORTS.c.id))
    return [PortRecord.of(r._mapping) for r in result]


async def release_port(session: AsyncSession, port_id: str) -> bool:
    """Delete the port and free its addresses. False if it was already gone."""
    return await _release(session, PORTS.c.id == port_id)


async def release_port_by_device(session: AsyncSession, bay_uuid: str, device_id: str) -> bool:
    """Delete the pod's port (pod DELETED) and free its address. Idempotent."""
    return await _release(session, (PORTS.c.bay_uuid == bay_uuid) & (PORTS.c.device_id == device_id))


async def _release(session: AsyncSession, where: ColumnElement[bool]) -> bool:
    row = await first_row(session, delete(PORTS).where(where).returning(PORTS.c.id, PORTS.c.fixed_ips))
    if row is None:
        return False
    port_id, fixed_ips = str(row[0]), list(row[1])
    allocator = allocator_for(session)
    for fixed in fixed_ips:
        await allocator.release(session, fixed["subnet_id"], fixed["ip_address"], port_id=port_id)
    return True


async def set_port_status(session: AsyncSession, port_id: str, status: str, *,
                          host_id: str | None = None) -> PortRecord:
    """Mark a port ACTIVE/DOWN (and where it is bound) as the node side reports."""
    if status not in PORT_STATUSES:
        raise errors.InvalidInput(f"port status must be one of {sorted(PORT_STATUSES)}",
                                  field="status")
    values: dict[str, object] = {"status": status}
    if host_id is not None:
        values["host_id"] = host_id
    row = await first_row(session, update(PORTS).where(PORTS.c.id == port_id).values(values)
                          .returning(*PORTS.c))
    if row is None:
        raise errors.NotFound(f"port {port_id} not found", port_id=port_id)
    return PortRecord.of(row._mapping)
