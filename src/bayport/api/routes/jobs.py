"""/v1/jobs: run a command as a batch/v1 Job in a tenant's namespace; the answer is the record.

``submit_job`` checks the request (tenant, command, mounts), writes the row ``Pending`` —
under the caller's Idempotency-Key, so a retried POST finds the same job — and calls the
conductor, which creates the Job and answers; if the conductor refuses, the row goes and
nothing is left behind. From then on the record follows the cluster through the conductor's
watch. The seed's /pods routes (``seed_pods``) use the same function and view.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.api.deps import (
    AllProjectsDep,
    ConductorDep,
    ContextDep,
    SessionDep,
    StateDep,
    WriterDep,
    visible_project,
)
from bayport.api.quotas import admission, admit
from bayport.api.routes.tenants import find_tenant
from bayport.api.schemas import Strict
from bayport.api.views import json_response, next_link
from bayport.db.base import new_uuid, utcnow
from bayport.db.jobs import JobRow
from bayport.db.repo import columns, paginate, scoped
from bayport.jobs.naming import render_name
from bayport.jobs.submission import check_submission, request_hash
from bayport.metrics import JOB_SUBMISSIONS
from bayport.objects.context import RequestContext
from bayport.objects.tenant import Job, JobStatus
from bayport.rpc import RPCClient

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

SORT_KEYS = {"created_at", "name", "status", "uuid"}
JOB_FIELDS = ("uuid", "name", "namespace", "cmd", "vols", "status", "created_at", "started_at",
              "finished_at", "exit_code", "message", "deleted_in_cluster")
NAME_ATTEMPTS = 3
INSERTED = {"uuid", "name", "tenant_id", "project_id", "user_id", "bay_uuid", "namespace", "cmd", "vols",
            "status", "deleted_in_cluster", "created_at"}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


class VolumeMount(Strict):
    pvc: str
    mount: str


class JobSubmit(Strict):
    """The seed's podInRequest: ``{"tenant", "cmd", "vols": [{"pvc", "mount"}]}``."""

    tenant: str
    cmd: str
    vols: list[VolumeMount] = []


def job_view(job: Any) -> dict[str, Any]:
    """A job record from a row or a Job object: the same fields either way."""
    out = {f: getattr(job, f) for f in JOB_FIELDS}
    out["tenant"] = job.tenant_id
    out["bay"] = job.bay_uuid
    return out


async def find_job(session: AsyncSession, ctx: RequestContext, job_uuid: str) -> JobRow:
    row = await session.get(JobRow, job_uuid)
    if row is None or (not ctx.is_admin and row.project_id != ctx.project_id):
        raise errors.NotFound(f"job {job_uuid} could not be found", field="uuid")
    return row


async def _by_key(session: AsyncSession, project_id: str, key: str) -> JobRow | None:
    result = await session.execute(select(JobRow).where(JobRow.project_id == project_id,
                                                        JobRow.idempotency_key == key))
    return result.scalar_one_or_none()


def _replay(existing: JobRow, digest: str, key: str) -> dict[str, Any]:
    if existing.request_hash != digest:
        raise errors.Conflict(f"Idempotency-Key {key!r} was already used for a different request "
                              f"(job {existing.uuid}); use a new key for a new job",
                              field="Idempotency-Key")
    return job_view(existing)


async def submit_job(body: JobSubmit, ctx: RequestContext, session: AsyncSession, conductor: RPCClient,
                     key: str | None, quota_defaults: dict[str, int]) -> tuple[dict[str, Any], bool]:
    """Create a job and return (its record, whether this was a replay of an earlier request);
    every submission is counted by outcome (``bayport_job_submissions_total``)."""
    try:
        record, replayed = await _submit_job(body, ctx, session, conductor, key, quota_defaults)
    except errors.BayportError:
        JOB_SUBMISSIONS.labels("rejected").inc()
        raise
    JOB_SUBMISSIONS.labels("replayed" if replayed else "accepted").inc()
    return record, replayed


async def _submit_job(body: JobSubmit, ctx: RequestContext, session: AsyncSession,
                      conductor: RPCClient, key: str | None, quota_defaults: dict[str, int]
                      ) -> tuple[dict[str, Any], bool]:
    cmd, vols = check_submission(body.cmd, [v.model_dump() for v in body.vols])
    try:
        tenant = await find_tenant(session, ctx, body.tenant)
    except errors.NotFound as exc:
        raise errors.InvalidInput(f"tenant: {exc.detail}", field="tenant") from exc
    digest = request_hash({"tenant": tenant.id, "cmd": cmd, "vols": vols})
    if key is not None:
        existing = await _by_key(session, tenant.project_id, key)
        if existing is not None:
            return _replay(existing, digest, key), True
    template = tenant.template
    pattern = str(template["metadata"]["name"])
    tenant_id, project_id, bay_uuid, namespace = (tenant.id, tenant.project_id, tenant.bay_uuid,
                                                  tenant.namespace)
    for _ in range(NAME_ATTEMPTS):
        uuid = new_uuid()
        job = Job(uuid=uuid, name=render_name(pattern, tenant_id, uuid), tenant_id=tenant_id,
                  project_id=project_id, user_id=ctx.user_id, bay_uuid=bay_uuid, namespace=namespace,
                  cmd=cmd, vols=vols, status=JobStatus.PENDING.value, created_at=utcnow())
        try:
            async with admission(session, project_id):
                await admit(session, quota_defaults, project_id, {"Job": 1})
                await session.execute(insert(JobRow).values(
                    **job.model_dump(include=INSERTED), idempotency_key=key, request_hash=digest))
                await session.commit()
            break
        except IntegrityError:
            await session.rollback()
            if key is not None:
                existing = await _by_key(session, project_id, key)
                if existing is not None:
                    return _replay(existing, digest, key), True
            await find_tenant(session, ctx, tenant_id)  # deleted meanwhile: 404, not a retry
    else:
        raise errors.Conflict("could not find an unused job name; try again")
    try:
        created: Job = await conductor.call(ctx, "job_create", job=job, template=template)
    except errors.RPCTimeout:
        # The conductor may yet create it; the watch settles the row either way.
        raise
    except errors.BayportError:
        await session.execute(delete(JobRow).where(JobRow.uuid == uuid))
        await session.commit()
        raise
    return job_view(created), False


@router.post("", status_code=201, summary="Run a command as a Job in a tenant's namespace")
async def create_job(body: JobSubmit, ctx: WriterDep, session: SessionDep, conductor: ConductorDep,
                     state: StateDep, idempotency_key: IdempotencyKey = None) -> Response:
    record, replayed = await submit_job(body, ctx, session, conductor, idempotency_key,
                                        state.settings.quota_defaults)
    response = json_response(record, 201)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get("", summary="List jobs (filter by tenant and status)")
async def list_jobs(request: Request, ctx: ContextDep, session: SessionDep,
                    tenant: str | None = None, status: str | None = None,
                    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                    marker: str | None = None, sort_key: str = "created_at", sort_dir: str = "asc",
                    all_projects: AllProjectsDep = False) -> Response:
    stmt = scoped(columns(JobRow), JobRow, visible_project(ctx, all_projects))
    if tenant is not None:
        stmt = stmt.where(JobRow.tenant_id == tenant)
    if status is not None:
        if status not in {s.value for s in JobStatus}:
            raise errors.InvalidInput(f"status must be one of {', '.join(s.value for s in JobStatus)}, "
                                      f"not {status!r}", field="status")
        stmt = stmt.where(JobRow.status == status)
    rows = await paginate(session, stmt, JobRow, limit=limit, marker=marker, sort_key=sort_key,
                          sort_dir=sort_dir, allowed_sort_keys=SORT_KEYS)
    out: dict[str, Any] = {"jobs": [job_view(r) for r in rows]}
    nxt = next_link(request, "jobs", rows, limit, {"tenant": tenant, "status": status,
                                                   "sort_key": sort_key, "sort_dir": sort_dir,
                                                   "all_projects": all_projects})
    if nxt:
        out["next"] = nxt
    return json_response(out)


@router.get("/{job_uuid}", summary="Show a job record")
async def show_job(job_uuid: str, ctx: ContextDep, session: SessionDep) -> Response:
    return json_response(job_view(await find_job(session, ctx, job_uuid)))


@router.get("/{job_uuid}/logs", summary="The log of the job's pod (while the pod exists)")
async def job_logs(job_uuid: str, ctx: ContextDep, session: SessionDep, conductor: ConductorDep,
                   tail_lines: Annotated[int | None, Query(ge=1)] = None) -> Response:
    row = await find_job(session, ctx, job_uuid)
    text: str = await conductor.call(ctx, "job_logs", job_uuid=row.uuid, tail_lines=tail_lines)
    return Response(text, media_type="text/plain; charset=utf-8")


@router.delete("/{job_uuid}", status_code=204, summary="Delete a job: its Job, its pods and its record")
async def delete_job(job_uuid: str, ctx: WriterDep, session: SessionDep, conductor: ConductorDep
                     ) -> Response:
    row = await find_job(session, ctx, job_uuid)
    await conductor.call(ctx, "job_delete", job_uuid=row.uuid)
    return Response(status_code=204)
