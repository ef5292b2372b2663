"""Core tables: projects and API tokens, baymodels, bays and their cluster credentials,
and the conductor registry whose heartbeats decide who owns in-progress work.

Workload, network and job tables live in their own modules (split by noun) on the
same ``Base``; ``bayport.db.migrations`` turns all of them into Alembic revisions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bayport.db.base import NAME_LEN, UUID_LEN, Base, TimestampMixin, new_uuid, utcnow


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Token(Base):
    """An API token. Only its SHA-256 is stored: a leaked database leaks no usable token."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True, default=new_uuid)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(NAME_LEN))
    role: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class BayModelRow(Base, TimestampMixin):
    __tablename__ = "baymodels"
    __table_args__ = (Index("ix_baymodels_project_name", "project_id", "name"),)

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True, default=new_uuid)
    name: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(NAME_LEN))
    coe: Mapped[str] = mapped_column(String(32), default="kubernetes")
    driver: Mapped[str] = mapped_column(String(32), default="local")
    image_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    flavor_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    master_flavor_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    keypair_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    external_network_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    fixed_network: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    fixed_subnet: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    dns_nameserver: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    docker_volume_size: Mapped[int | None] = mapped_column(Integer, default=None)
    network_driver: Mapped[str | None] = mapped_column(String(64), default=None)
    volume_driver: Mapped[str | None] = mapped_column(String(64), default=None)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    tls_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    master_lb_enabled: Mapped[bool] = mapped_column(Boolean, default=False)


class BayRow(Base, TimestampMixin):
    __tablename__ = "bays"
    __table_args__ = (
        Index("ix_bays_project_name", "project_id", "name"),
        Index("ix_bays_status", "status"),
        Index("ux_bays_pod_pool", "pod_pool", unique=True),
    )

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True, default=new_uuid)
    name: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(NAME_LEN))
    # RESTRICT: a template in use cannot disappear underneath its bays.
    baymodel_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("baymodels.uuid", ondelete="RESTRICT"), index=True)
    node_count: Mapped[int] = mapped_column(Integer, default=1)
    master_count: Mapped[int] = mapped_column(Integer, default=1)
    discovery_url: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    create_timeout: Mapped[int] = mapped_column(Integer, default=60)
    stack_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    status: Mapped[str | None] = mapped_column(String(32), default=None)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    api_address: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    node_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    master_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    coe_version: Mapped[str | None] = mapped_column(String(64), default=None)
    health_status: Mapped[str | None] = mapped_column(String(32), default=None)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Which conductor is driving this row's current operation, and until when it may.
    conductor_id: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    # The conductor whose process hosts this bay's cluster, for drivers whose clusters live
    # in-process (local); None for clusters that live elsewhere (heat, kubeconfig).
    host: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    # The IPv4 pool its pods' addresses come from (network.pod_pools); None: the shared default.
    pod_pool: Mapped[str | None] = mapped_column(String(43), default=None)


class BayCredential(Base):
    """How the conductor reaches a bay's Kubernetes API (server URL + bearer token / CA).

    Kept out of ``bays`` so list queries never carry secrets. ``token`` is full admin (the
    conductor's, and what members and admins get in their kubeconfig); ``reader_token`` may only
    read (readers' kubeconfigs); ``network_token`` is the pod-network controller's, the one that
    may set the pod-network annotations. Drivers without such credentials leave them None.
    """

    __tablename__ = "bay_credentials"

    bay_uuid: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("bays.uuid", ondelete="CASCADE"), primary_key=True)
    server: Mapped[str] = mapped_column(String(NAME_LEN))
    token: Mapped[str | None] = mapped_column(Text, default=None)
    reader_token: Mapped[str | None] = mapped_column(Text, default=None)
    network_token: Mapped[str | None] = mapped_column(Text, default=None)
    ca_data: Mapped[str | None] = mapped_column(Text, default=None)
    kubeconfig: Mapped[str | None] = mapped_column(Text, default=None)


class ConductorRow(Base):
    """A live conductor process; ``heartbeat_at`` older than 3 intervals means dead."""

    __tablename__ = "conductors"

    id: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(NAME_LEN))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
