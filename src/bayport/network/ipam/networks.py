"""Namespace networks: one Neutron-shaped network and subnet per (bay, namespace),
the subnet carved from the bay's pod pool (by default the next free /24 of
10.100.0.0/16, gateway .1, pool .2 to .254).

``ports.create_port`` calls ``ensure_namespace_network`` for every pod; the
controller calls ``release_namespace_network`` when a namespace is gone and
``release_bay_networks`` (through the conductor) when a bay is deleted. Creation is
idempotent and race-safe through the unique keys (bay_uuid, namespace) and
(bay_uuid, cidr): a concurrent creator's row wins and the loser reads it back.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.db.base import new_uuid, utcnow
from bayport.network.ipam.addresses import (
    IPNetwork,
    PoolLayout,
    carve,
    default_gateway,
    default_pools,
    parse_network,
)
from bayport.network.ipam.allocator import allocator_for
from bayport.network.ipam.exceptions import NetworkInUse, PodPoolExhausted
from bayport.network.ipam.records import NetworkRecord, SubnetRecord
from bayport.network.ipam.statements import (
    NETWORKS,
    PORTS,
    SUBNETS,
    execute,
    first_row,
    statements,
    unprefix,
)

DEFAULT_POD_POOL = "10.100.0.0/16"
DEFAULT_PREFIX = 24
# Names as Kuryr gives namespace networks; the reference's subnet is "default-subnet".
NETWORK_NAME = "{namespace}-net"
SUBNET_NAME = "{namespace}-subnet"


def subnetpool_id(bay_uuid: str, pod_pool: str) -> str:
    """A stable id for a bay's pod pool (Neutron's ``subnetpool_id`` of carved subnets)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bayport:subnetpool:{bay_uuid}:{pod_pool}"))


async def ensure_namespace_network(
    session: AsyncSession, bay_uuid: str, project_id: str, namespace: str, *,
    pod_pool: str = DEFAULT_POD_POOL, prefix: int = DEFAULT_PREFIX,
) -> tuple[NetworkRecord, SubnetRecord]:
    """The namespace's network and subnet, created on first use.

    The first statement is a write, so on SQLite the transaction holds the write
    lock from the start and never fails to upgrade a stale read snapshot.
    """
    pool = parse_network(pod_pool, field="pod_pool")
    sql = statements(session)
    await execute(session, sql.insert_network, {
        "id": new_uuid(), "name": NETWORK_NAME.format(namespace=namespace),
        "project_id": project_id, "bay_uuid": bay_uuid, "namespace": namespace,
        "status": "ACTIVE", "created_at": utcnow()})
    row = await first_row(session, sql.namespace_network, {"bay": bay_uuid, "ns": namespace})
    if row is None:
        raise errors.TemporaryError(f"network of namespace {namespace} vanished while created",
                                    delay=0.1)
    network = NetworkRecord.of(unprefix(row._mapping, "n_"))
    subnet_columns = unprefix(row._mapping, "s_")
    if subnet_columns["id"] is None:
        return network, await _carve_subnet(session, network, pool, prefix)
    return network, SubnetRecord.of(subnet_columns)


async def _carve_subnet(session: AsyncSession, network: NetworkRecord, pool: IPNetwork,
                        prefix: int) -> SubnetRecord:
    """The lowest /prefix of the pool no subnet of the bay overlaps (released ones first)."""
    used = [parse_network(c) for c in (await execute(
        session, select(SUBNETS.c.cidr).where(SUBNETS.c.bay_uuid == network.bay_uuid))).scalars()]
    pool_id = subnetpool_id(network.bay_uuid, str(pool))
    sql = statements(session)
    for candidate in carve(pool, prefix):
        if any(candidate.version == u.version and candidate.overlaps(u) for u in used):
            continue
        cidr = str(candidate)
        gateway = default_gateway(candidate)
        pools = default_pools(candidate, gateway)
        layout = PoolLayout.of(cidr, pools, gateway_ip=gateway)
        await execute(session, sql.insert_subnet, {
            "id": new_uuid(), "network_id": network.id, "bay_uuid": network.bay_uuid,
            "name": SUBNET_NAME.format(namespace=network.namespace), "cidr": cidr,
            "gateway_ip": gateway, "ip_version": candidate.version, "allocation_pools": pools,
            "dns_nameservers": [], "host_routes": [], "enable_dhcp": True,
            "project_id": network.project_id, "subnetpool_id": pool_id, "next_index": 0,
            "pool_size": layout.size, "created_at": utcnow()})
        row = await first_row(session, sql.subnet_by_cidr, {"bay": network.bay_uuid, "cidr_": cidr})
        if row is not None and row.network_id == network.id:
            return SubnetRecord.of(row._mapping)
        used.append(candidate)
    raise PodPoolExhausted(f"pod pool {pool} of bay {network.bay_uuid} has no free /{prefix} left",
                           bay_uuid=network.bay_uuid)


async def get_subnet(session: AsyncSession, subnet_id: str) -> SubnetRecord:
    row = await first_row(session, select(SUBNETS).where(SUBNETS.c.id == subnet_id))
    if row is None:
        raise errors.NotFound(f"subnet {subnet_id} not found", subnet_id=subnet_id)
    return SubnetRecord.of(row._mapping)


async def get_namespace_network(session: AsyncSession, bay_uuid: str,
                                namespace: str) -> tuple[NetworkRecord, SubnetRecord] | None:
    row = await first_row(session, statements(session).namespace_network,
                          {"bay": bay_uuid, "ns": namespace})
    if row is None or row._mapping["s_id"] is None:
        return None
    return (NetworkRecord.of(unprefix(row._mapping, "n_")),
            SubnetRecord.of(unprefix(row._mapping, "s_")))


async def release_namespace_network(session: AsyncSession, bay_uuid: str, namespace: str) -> bool:
    """Drop the namespace's network and subnets (its /24 goes back to the pod pool).

    Refused with ``NetworkInUse`` while ports remain; False if there was none.
    """
    network = await first_row(session, select(NETWORKS.c.id).where(
        NETWORKS.c.bay_uuid == bay_uuid, NETWORKS.c.namespace == namespace))
    if network is None:
        return False
    network_id = str(network[0])
    if (await execute(session, select(exists().where(PORTS.c.network_id == network_id)))).scalar():
        raise NetworkInUse(f"namespace {namespace} of bay {bay_uuid} still has ports",
                           network_id=network_id)
    return bool(await _delete_networks(session, NETWORKS.c.id == network_id))


async def release_bay_networks(session: AsyncSession, bay_uuid: str) -> int:
    """Drop every network, subnet, port and address of a bay; the number of networks."""
    return await _delete_networks(session, NETWORKS.c.bay_uuid == bay_uuid)


async def _delete_networks(session: AsyncSession, where: ColumnElement[bool]) -> int:
    subnet_ids = list((await execute(session, select(SUBNETS.c.id).join(
        NETWORKS, NETWORKS.c.id == SUBNETS.c.network_id).where(where))).scalars())
    # Subnets, ports, allocations, the free list and leases go by ON DELETE CASCADE.
    result = await execute(session, delete(NETWORKS).where(where).returning(NETWORKS.c.id))
    deleted = len(result.all())
    allocator_for(session).forget_subnets(subnet_ids)
    return deleted
