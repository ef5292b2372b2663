"""/v1/quotas, as Magnum serves it: an admin sets a project's hard limit per resource; a project
reads its own. Bayport adds resources beyond Magnum's ``Cluster`` (api/quotas.py) and shows the
usage next to each limit. Another project's quotas are a 404 to a non-admin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import Field
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bayport import errors
from bayport.api.deps import AdminDep, ContextDep, SessionDep, StateDep
from bayport.api.quotas import DEFAULTS, RESOURCES, check_resource, usage_of
from bayport.api.schemas import Strict
from bayport.api.views import json_response
from bayport.db.base import utcnow
from bayport.db.quotas import QuotaRow
from bayport.objects.context import RequestContext

router = APIRouter(prefix="/v1/quotas", tags=["quotas"])
HardLimit = Annotated[int, Field(ge=0, le=1_000_000)]


class QuotaCreate(Strict):
    project_id: Annotated[str, Field(min_length=1, max_length=64)]
    resource: Annotated[str, Field(min_length=1, max_length=32)]
    hard_limit: HardLimit


class QuotaUpdate(Strict):
    hard_limit: HardLimit


class QuotaDelete(Strict):
    project_id: Annotated[str, Field(min_length=1, max_length=64)]
    resource: Annotated[str, Field(min_length=1, max_length=32)]


def quota_view(row: QuotaRow, usage: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id, "project_id": row.project_id, "resource": row.resource,
                           "hard_limit": row.hard_limit, "created_at": row.created_at,
                           "updated_at": row.updated_at}
    if usage is not None:
        out["in_use"] = usage
    return out


def _visible(ctx: RequestContext, project_id: str) -> None:
    if not ctx.is_admin and project_id != ctx.project_id:
        raise errors.NotFound(f"no quotas of project {project_id} could be found", field="project_id")


async def _row(session: SessionDep, project_id: str, resource: str) -> QuotaRow | None:
    return (await session.execute(select(QuotaRow).where(
        QuotaRow.project_id == project_id, QuotaRow.resource == resource))).scalar_one_or_none()


@router.post("", status_code=201, summary="Set a project's quota for one resource (admin)")
async def create_quota(body: QuotaCreate, ctx: AdminDep, session: SessionDep) -> Response:
    check_resource(body.resource)
    row = QuotaRow(project_id=body.project_id, resource=body.resource, hard_limit=body.hard_limit)
    session.add(row)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise errors.Conflict(f"project {body.project_id} already has a {body.resource} quota; "
                              "PATCH it", field="resource") from exc
    return json_response(quota_view(row), 201)


@router.get("", summary="Quotas: the caller's project (admins: all, or ?project_id=)")
async def list_quotas(ctx: ContextDep, session: SessionDep, state: StateDep,
                      project_id: str | None = None) -> Response:
    """Stored quotas; for one project (a non-admin's own, always), every resource with its
    effective limit (``default: true`` where no row sets it) and what is in use."""
    if project_id is None and ctx.is_admin:
        rows = (await session.execute(select(QuotaRow).order_by(QuotaRow.id))).scalars()
        return json_response({"quotas": [quota_view(r) for r in rows]})
    project = project_id or ctx.project_id
    _visible(ctx, project)
    stored = {r.resource: r for r in (await session.execute(
        select(QuotaRow).where(QuotaRow.project_id == project))).scalars()}
    defaults = {**DEFAULTS, **state.settings.quota_defaults}
    out = []
    for resource in RESOURCES:
        usage = await usage_of(session, project, resource)
        if resource in stored:
            out.append({**quota_view(stored[resource], usage), "default": False})
        else:
            out.append({"id": None, "project_id": project, "resource": resource,
                        "hard_limit": defaults[resource], "in_use": usage, "default": True,
                        "created_at": None, "updated_at": None})
    return json_response({"quotas": out})


@router.get("/{project_id}/{resource}", summary="One project's quota for one resource")
async def show_quota(project_id: str, resource: str, ctx: ContextDep, session: SessionDep
                     ) -> Response:
    _visible(ctx, project_id)
    check_resource(resource)
    row = await _row(session, project_id, resource)
    if row is None:
        raise errors.NotFound(f"project {project_id} has no {resource} quota (the default applies)",
                              field="resource")
    return json_response(quota_view(row, await usage_of(session, project_id, resource)))


@router.patch("/{project_id}/{resource}", status_code=202, summary="Change a quota (admin)")
async def update_quota(project_id: str, resource: str, body: QuotaUpdate, ctx: AdminDep,
                       session: SessionDep) -> Response:
    check_resource(resource)
    row = await _row(session, project_id, resource)
    if row is None:
        raise errors.NotFound(f"project {project_id} has no {resource} quota", field="resource")
    row.hard_limit = body.hard_limit
    row.updated_at = utcnow()
    await session.commit()
    return json_response(quota_view(row), 202)


@router.delete("", status_code=204, summary="Remove a quota, as Magnum's body names it (admin)")
async def delete_quota(ctx: AdminDep, session: SessionDep,
                       body: Annotated[QuotaDelete, Body()]) -> Response:
    return await _delete(session, body.project_id, body.resource)


@router.delete("/{project_id}/{resource}", status_code=204, summary="Remove a quota (admin)")
async def delete_quota_by_path(project_id: str, resource: str, ctx: AdminDep,
                               session: SessionDep) -> Response:
    return await _delete(session, project_id, resource)


async def _delete(session: SessionDep, project_id: str, resource: str) -> Response:
    check_resource(resource)
    done = await session.execute(delete(QuotaRow).where(QuotaRow.project_id == project_id,
                                                        QuotaRow.resource == resource))
    await session.commit()
    if not done.rowcount:  # type: ignore[attr-defined]
        raise errors.NotFound(f"project {project_id} has no {resource} quota", field="resource")
    return Response(status_code=204)
