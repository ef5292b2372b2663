"""Tables of Bayport's IP address management: Neutron-shaped networks, subnets and
ports, plus the allocator's own bookkeeping (allocated addresses, the free list
and block leases).

``bayport.network.ipam`` is the only writer. The uniqueness constraints here are
the last line against handing one address or MAC out twice; the allocator's
cursor, free list and leases make the common path O(1) without scanning
``ip_allocations``. The schema is created by migration ``0002_network``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bayport.db.base import NAME_LEN, Base, new_uuid, utcnow, uuid_column

CIDR_LEN = 43          # the longest IPv6 CIDR text
IP_LEN = 39            # the longest IPv6 address text
MAC_LEN = 17
NAMESPACE_LEN = 253    # a Kubernetes namespace name (DNS subdomain)
STATUS_LEN = 16
HOLDER_LEN = 128
PROJECT_ID_LEN = 64    # as projects.id in db/models.py

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a bigint.
SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class NetworkRow(Base):
    """One network per (bay, namespace) unless configured otherwise (DESIGN.md, Network)."""

    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("bay_uuid", "namespace"),)

    id: Mapped[str] = mapped_column(uuid_column, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    project_id: Mapped[str] = mapped_column(String(PROJECT_ID_LEN))
    bay_uuid: Mapped[str] = mapped_column(uuid_column, index=True)
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default="ACTIVE")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubnetRow(Base):
    """A CIDR with allocation pools; ``next_index``/``pool_size`` are the allocator's cursor.

    The cursor counts positions over the concatenated allocation pools; it only moves
    forward. Addresses behind it come back through ``ip_free``.
    """

    __tablename__ = "subnets"
    __table_args__ = (UniqueConstraint("bay_uuid", "cidr"),)

    id: Mapped[str] = mapped_column(uuid_column, primary_key=True, default=new_uuid)
    network_id: Mapped[str] = mapped_column(
        uuid_column, ForeignKey("networks.id", ondelete="CASCADE"), index=True)
    bay_uuid: Mapped[str] = mapped_column(uuid_column)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    cidr: Mapped[str] = mapped_column(String(CIDR_LEN))
    gateway_ip: Mapped[str | None] = mapped_column(String(IP_LEN), default=None)
    ip_version: Mapped[int] = mapped_column(Integer)
    allocation_pools: Mapped[list[Any]] = mapped_column(JSON)
    dns_nameservers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    host_routes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT_ID_LEN))
    subnetpool_id: Mapped[str | None] = mapped_column(uuid_column, default=None)
    next_index: Mapped[int] = mapped_column(BigInteger, default=0)
    pool_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PortRow(Base):
    """A pod's address: one per (bay, device_id = pod uid); ``fixed_ips`` mirrors ``ip_allocations``."""

    __tablename__ = "ports"
    __table_args__ = (
        UniqueConstraint("mac_address"),
        UniqueConstraint("bay_uuid", "device_id"),
        Index("ix_ports_bay_uuid_namespace", "bay_uuid", "namespace"),
    )

    id: Mapped[str] = mapped_column(uuid_column, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    network_id: Mapped[str] = mapped_column(
        uuid_column, ForeignKey("networks.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(String(PROJECT_ID_LEN))
    bay_uuid: Mapped[str] = mapped_column(uuid_column)
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    mac_address: Mapped[str] = mapped_column(String(MAC_LEN))
    fixed_ips: Mapped[list[Any]] = mapped_column(JSON)
    device_owner: Mapped[str] = mapped_column(String(NAME_LEN), default="bayport:container")
    device_id: Mapped[str] = mapped_column(String(NAME_LEN))
    host_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    status: Mapped[str] = mapped_column(String(STATUS_LEN), default="ACTIVE")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IPAllocationRow(Base):
    """An address in use. The primary key (subnet_id, ip_address) forbids a second holder."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[str] = mapped_column(
        uuid_column, ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(IP_LEN), primary_key=True)
    port_id: Mapped[str | None] = mapped_column(uuid_column, default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FreeAddressRow(Base):
    """The free list: released addresses behind the cursor, handed out oldest release first."""

    __tablename__ = "ip_free"
    __table_args__ = (
        UniqueConstraint("subnet_id", "ip_address"),
        Index("ix_ip_free_subnet_id_seq", "subnet_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(SEQ_TYPE, primary_key=True, autoincrement=True)
    subnet_id: Mapped[str] = mapped_column(uuid_column, ForeignKey("subnets.id", ondelete="CASCADE"))
    ip_address: Mapped[str] = mapped_column(String(IP_LEN))


class AddressLeaseRow(Base):
    """Cursor positions [start_index, end_index) held in one allocator's memory until ``expires_at``.

    A crashed allocator's lease expires and a sweep returns the positions that never
    became allocations to the free list, so a crash leaks nothing for long.
    """

    __tablename__ = "ip_leases"
    __table_args__ = (Index("ix_ip_leases_subnet_id_expires_at", "subnet_id", "expires_at"),)

    id: Mapped[str] = mapped_column(uuid_column, primary_key=True, default=new_uuid)
    subnet_id: Mapped[str] = mapped_column(uuid_column, ForeignKey("subnets.id", ondelete="CASCADE"))
    holder: Mapped[str] = mapped_column(String(HOLDER_LEN), index=True)
    start_index: Mapped[int] = mapped_column(BigInteger)
    end_index: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(index=True)
