"""IPAM's SQL, built once per dialect and executed on the session's connection.

Building a statement costs more than running it on SQLite, and the ORM's execute
path costs more again, so the hot paths reuse these Core statements with bound
parameters. ``INSERT … ON CONFLICT DO NOTHING RETURNING`` is how IPAM claims a
unique key without an exception: on PostgreSQL a failed INSERT would abort the
caller's whole transaction, so conflicts are never raised on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, Row, Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bayport.db.network import (
    AddressLeaseRow,
    FreeAddressRow,
    IPAllocationRow,
    NetworkRow,
    PortRow,
    SubnetRow,
)

NETWORKS = cast(Table, NetworkRow.__table__)
SUBNETS = cast(Table, SubnetRow.__table__)
PORTS = cast(Table, PortRow.__table__)
ALLOCATIONS = cast(Table, IPAllocationRow.__table__)
FREE = cast(Table, FreeAddressRow.__table__)
LEASES = cast(Table, AddressLeaseRow.__table__)


def _prefixed(table: Table, prefix: str) -> list[Any]:
    return [c.label(prefix + c.name) for c in table.c]


def unprefix(row: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
    return {str(k)[len(prefix):]: v for k, v in row.items() if str(k).startswith(prefix)}


class Statements:
    """Every hot-path statement of IPAM for one dialect."""

    def __init__(self, dialect: str) -> None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.insert_network = insert(NETWORKS).on_conflict_do_nothing()
        self.namespace_network = (
            select(*_prefixed(NETWORKS, "n_"), *_prefixed(SUBNETS, "s_"))
            .select_from(NETWORKS.outerjoin(SUBNETS, SUBNETS.c.network_id == NETWORKS.c.id))
            .where(NETWORKS.c.bay_uuid == bindparam("bay"), NETWORKS.c.namespace == bindparam("ns"))
            .order_by(SUBNETS.c.created_at).limit(1))
        self.insert_subnet = insert(SUBNETS).on_conflict_do_nothing()
        self.subnet_by_cidr = select(SUBNETS).where(SUBNETS.c.bay_uuid == bindparam("bay"),
                                                    SUBNETS.c.cidr == bindparam("cidr_"))
        self.port_of_device = select(PORTS).where(PORTS.c.bay_uuid == bindparam("bay"),
                                                  PORTS.c.device_id == bindparam("device"))
        self.insert_port = insert(PORTS).on_conflict_do_nothing().returning(*PORTS.c)

        self.insert_allocation = (insert(ALLOCATIONS).on_conflict_do_nothing()
                                  .returning(ALLOCATIONS.c.ip_address))
        self.delete_allocation = (
            delete(ALLOCATIONS).where(ALLOCATIONS.c.subnet_id == bindparam("subnet"),
                                      ALLOCATIONS.c.ip_address == bindparam("ip"))
            .returning(ALLOCATIONS.c.ip_address))
        self.delete_port_allocation = self.delete_allocation.where(
            ALLOCATIONS.c.port_id == bindparam("port"))
        self.claim_block = (
            update(SUBNETS).where(SUBNETS.c.id == bindparam("subnet"),
                                  SUBNETS.c.next_index < SUBNETS.c.pool_size)
            .values(next_index=SUBNETS.c.next_index + bindparam("size"))
            .returning(SUBNETS.c.next_index, SUBNETS.c.pool_size))
        self.insert_lease = insert(LEASES)
        oldest_free = (select(FREE.c.seq).where(FREE.c.subnet_id == bindparam("subnet"),
                                                FREE.c.seq > bindparam("after"))
                       .order_by(FREE.c.seq).limit(bindparam("n")).with_for_update(skip_locked=True))
        self.pop_free = (delete(FREE).where(FREE.c.seq.in_(oldest_free))
                         .returning(FREE.c.seq, FREE.c.ip_address))
        self.insert_free = insert(FREE).on_conflict_do_nothing()


@cache
def _statements(dialect: str) -> Statements:
    return Statements(dialect)


def statements(session: AsyncSession) -> Statements:
    return _statements(session.get_bind().dialect.name)


async def execute(session: AsyncSession, statement: Executable,
                  params: Mapping[str, Any] | list[dict[str, Any]] | None = None) -> Any:
    """Run a Core statement on the session's connection, in its transaction."""
    connection = await session.connection()
    return await connection.execute(statement, params)


async def first_row(session: AsyncSession, statement: Executable,
                    params: Mapping[str, Any] | None = None) -> Row[*tuple[Any, ...]] | None:
    result = await execute(session, statement, params)
    row: Row[*tuple[Any, ...]] | None = result.first()
    return row
