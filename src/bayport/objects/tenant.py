"""Tenant, TenantVolume and Job: the job service's objects (reference 002), on the bus and in answers.

A Tenant owns one namespace (named by its id) in one bay and a Job template; a
TenantVolume is a PersistentVolumeClaim in that namespace; a Job is one run of a
command rendered from the template. The API builds them from validated requests and
freshly written rows, the conductor (``bayport.conductor.jobs``) does the cluster work
and answers with the object as the row then reads, so a POST never answers null.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import Field

from bayport.objects.base import BayportObject


class JobStatus(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_JOB_STATES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})
LIVE_JOB_STATES = frozenset({JobStatus.PENDING, JobStatus.RUNNING})


def _of_row(cls: type[Any], row: Any) -> Any:
    return cls.loaded(**{f: getattr(row, f) for f in cls.model_fields})


class Tenant(BayportObject):
    OBJ_NAME = "Tenant"
    VERSION = "1.0"

    id: str
    name: str
    project_id: str = ""
    user_id: str = ""
    bay_uuid: str
    namespace: str
    template: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of_row(cls, row: Any) -> Self:
        result: Self = _of_row(cls, row)
        return result


class TenantVolume(BayportObject):
    OBJ_NAME = "TenantVolume"
    VERSION = "1.0"

    tenant_id: str
    name: str
    size: str
    status: str = "Pending"
    volume_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of_row(cls, row: Any) -> Self:
        result: Self = _of_row(cls, row)
        return result


class Job(BayportObject):
    OBJ_NAME = "Job"
    VERSION = "1.0"

    uuid: str
    name: str
    tenant_id: str
    namespace: str
    bay_uuid: str
    project_id: str = ""
    user_id: str = ""
    cmd: str
    vols: list[dict[str, str]] = Field(default_factory=list)
    status: str = JobStatus.PENDING.value
    message: str | None = None
    exit_code: int | None = None
    k8s_uid: str | None = None
    deleted_in_cluster: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of_row(cls, row: Any) -> Self:
        result: Self = _of_row(cls, row)
        return result
