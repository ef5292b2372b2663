"""network tables: networks, subnets, ports and the IPAM bookkeeping (ip_allocations,
ip_free, ip_leases)

Revision ID: 0002_network
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bayport.db.base

revision = "0002_network"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("bay_uuid", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_networks")),
        sa.UniqueConstraint("bay_uuid", "namespace", name=op.f("uq_networks_bay_uuid_namespace")),
    )
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_networks_bay_uuid"), ["bay_uuid"], unique=False)

    op.create_table(
        "ports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("bay_uuid", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("mac_address", sa.String(length=17), nullable=False),
        sa.Column("fixed_ips", sa.JSON(), nullable=False),
        sa.Column("device_owner", sa.String(length=255), nullable=False),
        sa.Column("device_id", sa.String(length=255), nullable=False),
        sa.Column("host_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("admin_state_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"], ["networks.id"], name=op.f("fk_ports_network_id_networks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ports")),
        sa.UniqueConstraint("bay_uuid", "device_id", name=op.f("uq_ports_bay_uuid_device_id")),
        sa.UniqueConstraint("mac_address", name=op.f("uq_ports_mac_address")),
    )
    with op.batch_alter_table("ports", schema=None) as batch_op:
        batch_op.create_index("ix_ports_bay_uuid_namespace", ["bay_uuid", "namespace"], unique=False)
        batch_op.create_index(batch_op.f("ix_ports_network_id"), ["network_id"], unique=False)

    op.create_table(
        "subnets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.Column("bay_uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("cidr", sa.String(length=43), nullable=False),
        sa.Column("gateway_ip", sa.String(length=39), nullable=True),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("allocation_pools", sa.JSON(), nullable=False),
        sa.Column("dns_nameservers", sa.JSON(), nullable=False),
        sa.Column("host_routes", sa.JSON(), nullable=False),
        sa.Column("enable_dhcp", sa.Boolean(), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("subnetpool_id", sa.String(length=36), nullable=True),
        sa.Column("next_index", sa.BigInteger(), nullable=False),
        sa.Column("pool_size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"], ["networks.id"], name=op.f("fk_subnets_network_id_networks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subnets")),
        sa.UniqueConstraint("bay_uuid", "cidr", name=op.f("uq_subnets_bay_uuid_cidr")),
    )
    with op.batch_alter_table("subnets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subnets_network_id"), ["network_id"], unique=False)

    op.create_table(
        "ip_allocations",
        sa.Column("subnet_id", sa.String(length=36), nullable=False),
        sa.Column("ip_address", sa.String(length=39), nullable=False),
        sa.Column("port_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subnet_id"], ["subnets.id"], name=op.f("fk_ip_allocations_subnet_id_subnets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subnet_id", "ip_address", name=op.f("pk_ip_allocations")),
    )
    with op.batch_alter_table("ip_allocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ip_allocations_port_id"), ["port_id"], unique=False)

    op.create_table(
        "ip_free",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("subnet_id", sa.String(length=36), nullable=False),
        sa.Column("ip_address", sa.String(length=39), nullable=False),
        sa.ForeignKeyConstraint(
            ["subnet_id"], ["subnets.id"], name=op.f("fk_ip_free_subnet_id_subnets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ip_free")),
        sa.UniqueConstraint("subnet_id", "ip_address", name=op.f("uq_ip_free_subnet_id_ip_address")),
    )
    with op.batch_alter_table("ip_free", schema=None) as batch_op:
        batch_op.create_index("ix_ip_free_subnet_id_seq", ["subnet_id", "seq"], unique=False)

    op.create_table(
        "ip_leases",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subnet_id", sa.String(length=36), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("start_index", sa.BigInteger(), nullable=False),
        sa.Column("end_index", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", bayport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subnet_id"], ["subnets.id"], name=op.f("fk_ip_leases_subnet_id_subnets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ip_leases")),
    )
    with op.batch_alter_table("ip_leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ip_leases_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ip_leases_holder"), ["holder"], unique=False)
        batch_op.create_index("ix_ip_leases_subnet_id_expires_at", ["subnet_id", "expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ip_leases", schema=None) as batch_op:
        batch_op.drop_index("ix_ip_leases_subnet_id_expires_at")
        batch_op.drop_index(batch_op.f("ix_ip_leases_holder"))
        batch_op.drop_index(batch_op.f("ix_ip_leases_expires_at"))

    op.drop_table("ip_leases")
    with op.batch_alter_table("ip_free", schema=None) as batch_op:
        batch_op.drop_index("ix_ip_free_subnet_id_seq")

    op.drop_table("ip_free")
    with op.batch_alter_table("ip_allocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ip_allocations_port_id"))

    op.drop_table("ip_allocations")
    with op.batch_alter_table("subnets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subnets_network_id"))

    op.drop_table("subnets")
    with op.batch_alter_table("ports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ports_network_id"))
        batch_op.drop_index("ix_ports_bay_uuid_namespace")

    op.drop_table("ports")
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_networks_bay_uuid"))

    op.drop_table("networks")
