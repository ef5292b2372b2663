"""Per-project quotas, checked when work is admitted, so that one project cannot take what the
service has from everyone else.

Resources (Magnum names its only one ``Cluster``; the others are Bayport's):

* ``Cluster``: bays of the project;
* ``Node``: masters and workers over all its bays;
* ``Operation``: its bays in a ``*_IN_PROGRESS`` state at once;
* ``Pod``: its live pods made through Bayport (each takes one port, so this bounds ports too);
* ``Job``: its tenant jobs not yet finished;
* ``CreateTimeout``: the largest ``create_timeout`` (minutes) it may ask for.

A limit is the project's row in ``quotas``, else the operator's default
(``Settings.quota_defaults``). ``admit`` is atomic: it locks the project's row
(``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite a per-project lock in this process, the only
process ``bayport serve`` runs) and holds it until the caller commits the new row, so concurrent
requests cannot both take the last unit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.db.base import is_sqlite
from bayport.db.jobs import JobRow
from bayport.db.models import BayRow, Project
from bayport.db.quotas import QuotaRow
from bayport.db.workloads import WorkloadRow
from bayport.kube.kinds import POD
from bayport.objects.states import IN_PROGRESS
from bayport.objects.tenant import LIVE_JOB_STATES

RESOURCES = ("Cluster", "Node", "Operation", "Pod", "Job", "CreateTimeout")
DEFAULTS = {"Cluster": 50, "Node": 500, "Operation": 20, "Pod": 5000, "Job": 500,
            "CreateTimeout": 1440}
WHAT = {"Cluster": "bays", "Node": "nodes", "Operation": "bay operations in progress",
        "Pod": "pods", "Job": "unfinished jobs", "CreateTimeout": "minutes of create_timeout"}

_local_locks: dict[str, asyncio.Lock] = {}


class QuotaExceeded(errors.Forbidden):
    code = "QuotaExceeded"
    title = "Quota exceeded"


def check_resource(resource: str) -> str:
    if resource not in RESOURCES:
        raise errors.InvalidInput(f"resource must be one of {', '.join(RESOURCES)}, not {resource!r}",
                                  field="resource")
    return resource


async def limit_of(session: AsyncSession, defaults: dict[str, int], project_id: str,
                   resource: str) -> int:
    row = (await session.execute(select(QuotaRow.hard_limit).where(
        QuotaRow.project_id == project_id, QuotaRow.resource == resource))).scalar_one_or_none()
    return int(row) if row is not None else int({**DEFAULTS, **defaults}[resource])


async def usage_of(session: AsyncSession, project_id: str, resource: str) -> int:
    """What the project holds of ``resource`` now (CreateTimeout has no usage: 0)."""
    stmt: Any
    if resource == "Cluster":
        stmt = select(func.count()).select_from(BayRow).where(BayRow.project_id == project_id)
    elif resource == "Node":
        stmt = select(func.coalesce(func.sum(BayRow.node_count + BayRow.master_count), 0)).where(
            BayRow.project_id == project_id)
    elif resource == "Operation":
        stmt = select(func.count()).select_from(BayRow).where(
            BayRow.project_id == project_id, BayRow.status.in_([s.value for s in IN_PROGRESS]))
    elif resource == "Pod":
        stmt = select(func.count()).select_from(WorkloadRow).where(
            WorkloadRow.project_id == project_id, WorkloadRow.kind == POD.kind,
            WorkloadRow.deleted_at.is_(None))
    elif resource == "Job":
        stmt = select(func.count()).select_from(JobRow).where(
            JobRow.project_id == project_id, JobRow.status.in_([s.value for s in LIVE_JOB_STATES]))
    else:
        return 0
    return int((await session.execute(stmt)).scalar_one())


@contextlib.asynccontextmanager
async def admission(session: AsyncSession, project_id: str) -> AsyncIterator[None]:
    """Serialise admissions of one project until the block ends (commit inside it)."""
    if is_sqlite(session.bind):  # type: ignore[arg-type]
        lock = _local_locks.setdefault(project_id, asyncio.Lock())
        async with lock:
            yield
        return
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    yield


async def admit(session: AsyncSession, defaults: dict[str, int], project_id: str,
                wants: dict[str, int]) -> None:
    """Raise QuotaExceeded unless the project can take ``wants`` more of each resource (for
    CreateTimeout: the value asked for). Call inside ``admission``."""
    for resource, more in wants.items():
        limit = await limit_of(session, defaults, project_id, resource)
        if resource == "CreateTimeout":
            if more > limit:
                raise QuotaExceeded(
                    f"create_timeout {more} is over project {project_id}'s limit of {limit} minutes",
                    field="create_timeout")
            continue
        used = await usage_of(session, project_id, resource)
        if more > 0 and used + more > limit:
            raise QuotaExceeded(
                f"project {project_id} may have at most {limit} {WHAT[resource]} (quota "
                f"{resource}); it has {used} and asked for {more} more", field=resource)
