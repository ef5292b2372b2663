"""IP address management: Neutron-shaped networks, subnets and ports in Bayport's own
database, with O(1) amortised allocation at any fill (see ``allocator``).

The network controller is the caller: for a new pod ``create_port`` (which ensures
the namespace network), then ``pod_annotations`` for the pod; for a deleted pod
``release_port_by_device``; periodically ``reclaim_expired_leases``; at shutdown
``release_leases``. Every function takes the caller's ``AsyncSession`` and leaves
committing to it. Tables: ``bayport.db.network``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bayport.db.base import make_sessionmaker
from bayport.network.ipam.addresses import PoolLayout, random_mac
from bayport.network.ipam.allocator import AddressAllocator, allocator_for, install_allocator
from bayport.network.ipam.exceptions import NetworkInUse, PodPoolExhausted, SubnetExhausted
from bayport.network.ipam.networks import (
    DEFAULT_POD_POOL,
    DEFAULT_PREFIX,
    ensure_namespace_network,
    get_namespace_network,
    get_subnet,
    release_bay_networks,
    release_namespace_network,
    subnetpool_id,
)
from bayport.network.ipam.ports import (
    create_port,
    get_port,
    get_port_by_device,
    list_ports,
    release_port,
    release_port_by_device,
    set_port_status,
)
from bayport.network.ipam.records import (
    DEVICE_OWNER,
    FixedIP,
    NetworkRecord,
    PortRecord,
    SubnetRecord,
    neutron_port_dict,
    neutron_subnet_dict,
    pod_annotations,
)


async def allocate_address(session: AsyncSession, subnet_id: str, *, port_id: str | None = None) -> str:
    """One address of ``subnet_id`` outside any port (ports get theirs from ``create_port``)."""
    return await allocator_for(session).allocate(session, subnet_id, port_id=port_id)


async def allocate_addresses(session: AsyncSession, subnet_id: str, count: int) -> list[str]:
    """``count`` addresses at once (a burst of pods): one multi-row INSERT per round."""
    return await allocator_for(session).allocate_many(session, subnet_id, count)


async def release_address(session: AsyncSession, subnet_id: str, ip_address: str) -> bool:
    return await allocator_for(session).release(session, subnet_id, ip_address)


async def reclaim_expired_leases(session: AsyncSession, *, limit: int | None = 100) -> int:
    """Sweep blocks of crashed allocators back to the free lists; the addresses returned."""
    return await allocator_for(session).reclaim_expired(session, limit=limit)


async def release_leases(engine: AsyncEngine) -> int:
    """Clean shutdown: return this process's unused reserved addresses to the free lists."""
    async with make_sessionmaker(engine)() as session, session.begin():
        return await allocator_for(engine).release_leases(session)


__all__ = [
    "DEFAULT_POD_POOL",
    "DEFAULT_PREFIX",
    "DEVICE_OWNER",
    "AddressAllocator",
    "FixedIP",
    "NetworkInUse",
    "NetworkRecord",
    "PodPoolExhausted",
    "PoolLayout",
    "PortRecord",
    "SubnetExhausted",
    "SubnetRecord",
    "allocate_address",
    "allocate_addresses",
    "allocator_for",
    "create_port",
    "ensure_namespace_network",
    "get_namespace_network",
    "get_port",
    "get_port_by_device",
    "get_subnet",
    "install_allocator",
    "list_ports",
    "neutron_port_dict",
    "neutron_subnet_dict",
    "pod_annotations",
    "random_mac",
    "reclaim_expired_leases",
    "release_address",
    "release_bay_networks",
    "release_leases",
    "release_namespace_network",
    "release_port",
    "release_port_by_device",
    "set_port_status",
    "subnetpool_id",
]
