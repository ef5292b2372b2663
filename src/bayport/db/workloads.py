"""The ``workloads`` table: one row per pod, service or replication controller Bayport created.

One table with a ``kind`` column, because the three share ownership, lifecycle and most
columns; the kind-specific ones stay NULL where they do not apply. The Kubernetes object is
the truth; the row records who owns it (project, user, bay) and what was last observed
(status, node, pod IP, ClusterIP, ready replicas), kept current by the conductor's watch.
A row whose object was deleted behind Bayport's back keeps its uuid with ``deleted_at`` set,
and frees its name: uniqueness of (bay, kind, namespace, name) holds for live rows only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bayport.db.base import NAME_LEN, UUID_LEN, Base, TimestampMixin, new_uuid

LIVE = text("deleted_at IS NULL")


class WorkloadRow(Base, TimestampMixin):
    __tablename__ = "workloads"
    __table_args__ = (
        Index("uq_workloads_live_name", "bay_uuid", "kind", "namespace", "name", unique=True,
              sqlite_where=LIVE, postgresql_where=LIVE),
        Index("ix_workloads_project_kind", "project_id", "kind"),
        Index("ix_workloads_bay_kind", "bay_uuid", "kind"),
    )

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(NAME_LEN))
    bay_uuid: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("bays.uuid", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    namespace: Mapped[str] = mapped_column(String(NAME_LEN), default="default")
    manifest: Mapped[str | None] = mapped_column(Text, default=None)
    manifest_url: Mapped[str | None] = mapped_column(Text, default=None)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    images: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    host: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    pod_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    # The pod's port in Bayport's IPAM (from its bayport.io/port-id annotation).
    port_id: Mapped[str | None] = mapped_column(String(UUID_LEN), default=None)
    selector: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    ports: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    replicas: Mapped[int | None] = mapped_column(Integer, default=None)
    ready_replicas: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    k8s_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
