"""The job service's tables: tenants, their volumes and their jobs (reference 002).

A tenant's id is also its namespace's name in its bay, so it is the primary key; the
template is the tenant's Job template as JSON. A job row is written by the API before
the conductor creates the Kubernetes Job (so an ``Idempotency-Key`` retry finds it and
a conductor crash in between is reconciled by the watch), then kept current by the
watch; it outlives its Job, which ``ttlSecondsAfterFinished`` removes from the cluster.
Deleting a tenant (or its bay) removes its volumes and jobs with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, synonym

from bayport.db.base import NAME_LEN, UUID_LEN, Base, TimestampMixin, new_uuid

NAMESPACE_LEN = 63


class TenantRow(Base, TimestampMixin):
    __tablename__ = "tenants"
    __table_args__ = (Index("ix_tenants_project_created", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(NAMESPACE_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(NAME_LEN))
    bay_uuid: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("bays.uuid", ondelete="CASCADE"),
                                          index=True)
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    template: Mapped[dict[str, Any]] = mapped_column(JSON)

    # The shared pagination helpers key on ``uuid``; a tenant's key is its id.
    uuid = synonym("id")


class TenantVolumeRow(Base, TimestampMixin):
    """A PersistentVolumeClaim Bayport created in a tenant's namespace; status follows the watch."""

    __tablename__ = "tenant_volumes"

    tenant_id: Mapped[str] = mapped_column(
        String(NAMESPACE_LEN), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    size: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    volume_name: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)


class JobRow(Base, TimestampMixin):
    __tablename__ = "jobs"
    __table_args__ = (
        # An Idempotency-Key names one job per project (NULL keys never collide).
        Index("uq_jobs_project_idempotency_key", "project_id", "idempotency_key", unique=True),
        # The seed addresses a job by (tenant, name); names are never reused within a tenant.
        Index("uq_jobs_tenant_name", "tenant_id", "name", unique=True),
        Index("ix_jobs_tenant_status", "tenant_id", "status"),
        Index("ix_jobs_project_created", "project_id", "created_at"),
        Index("ix_jobs_bay_status", "bay_uuid", "status"),
    )

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    tenant_id: Mapped[str] = mapped_column(String(NAMESPACE_LEN),
                                           ForeignKey("tenants.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(NAME_LEN))
    bay_uuid: Mapped[str] = mapped_column(String(UUID_LEN))
    namespace: Mapped[str] = mapped_column(String(NAMESPACE_LEN))
    cmd: Mapped[str] = mapped_column(Text)
    vols: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text, default=None)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    k8s_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    deleted_in_cluster: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
