"""The seed pod service's routes (reference 002), kept so its clients work unchanged.

``POST /pods`` takes the seed's body and creates a job exactly as ``POST /v1/jobs`` does;
``GET /pods?tenant=`` lists the tenant's job records; ``DELETE /pods?tenant=&name=`` deletes
one by name and answers with its last record. Unlike the seed, no answer is ever null.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from bayport import errors
from bayport.api.deps import ConductorDep, ContextDep, SessionDep, StateDep, WriterDep
from bayport.api.routes.jobs import IdempotencyKey, JobSubmit, job_view, submit_job
from bayport.api.routes.tenants import find_tenant
from bayport.api.views import json_response
from bayport.db.jobs import JobRow

router = APIRouter(prefix="/pods", tags=["seed pods"])
Required = Annotated[str, Query(min_length=1)]


@router.post("", status_code=201, summary="Seed: run {tenant, cmd, vols} as a Job")
async def create_pod(body: JobSubmit, ctx: WriterDep, session: SessionDep, conductor: ConductorDep,
                     state: StateDep, idempotency_key: IdempotencyKey = None) -> Response:
    record, replayed = await submit_job(body, ctx, session, conductor, idempotency_key,
                                        state.settings.quota_defaults)
    response = json_response(record, 201)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get("", summary="Seed: the tenant's job records")
async def list_pods(tenant: Required, ctx: ContextDep, session: SessionDep,
                    name: str | None = None) -> Response:
    row = await find_tenant(session, ctx, tenant)
    stmt = select(JobRow).where(JobRow.tenant_id == row.id)
    if name is not None:
        stmt = stmt.where(JobRow.name == name)
    rows = await session.execute(stmt.order_by(JobRow.created_at, JobRow.uuid))
    return json_response([job_view(r) for r in rows.scalars()])


@router.delete("", summary="Seed: delete the tenant's job by name; answers its last record")
async def delete_pod(tenant: Required, name: Required, ctx: WriterDep, session: SessionDep,
                     conductor: ConductorDep) -> Response:
    row = await find_tenant(session, ctx, tenant)
    job = (await session.execute(select(JobRow).where(JobRow.tenant_id == row.id,
                                                      JobRow.name == name))).scalar_one_or_none()
    if job is None:
        raise errors.NotFound(f"tenant {row.id} has no job named {name}", field="name")
    record = job_view(job)
    await conductor.call(ctx, "job_delete", job_uuid=job.uuid)
    return json_response(record)
