"""/v1/tenants: a tenant owns one namespace in a bay, a Job template and its volumes (reference 002).

Creating a tenant creates its namespace at once (no manual step, as the seed asked for):
the API validates the id, the bay and, when BAYPORT_TENANT_SERVICE_URL is set, that the
tenant service knows the id; the conductor creates the namespace and the row and answers
with the tenant. Templates are data and are checked and stored here; volumes are claims the
conductor creates. Another project's tenant is a 404, exactly as if it did not exist.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, Query, Request, Response
from sqlalchemy import select, update
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
from bayport.api.routes.bays import find_bay
from bayport.api.schemas import Name, Strict
from bayport.api.views import json_response, next_link
from bayport.db.base import utcnow
from bayport.db.jobs import TenantRow, TenantVolumeRow
from bayport.db.repo import paginate, scoped
from bayport.jobs.naming import check_tenant_id, is_claim_name, new_tenant_id
from bayport.jobs.template import default_template, validate_template
from bayport.objects.context import RequestContext
from bayport.objects.states import BayStatus
from bayport.objects.tenant import Tenant, TenantVolume

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])

SORT_KEYS = {"id", "name", "created_at"}
USABLE_BAY_STATES = (BayStatus.CREATE_COMPLETE, BayStatus.UPDATE_COMPLETE, BayStatus.UPDATE_IN_PROGRESS,
                     BayStatus.UPDATE_FAILED)
QUANTITY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
TENANT_SERVICE_TIMEOUT = 5.0
TENANT_FIELDS = ("id", "name", "namespace", "project_id", "user_id", "created_at", "updated_at")
VOLUME_FIELDS = ("name", "size", "status", "volume_name", "created_at", "updated_at")


class TenantCreate(Strict):
    id: str | None = None
    name: Name
    bay: Name


class VolumeCreate(Strict):
    name: str
    size: str = "1Gi"


def tenant_view(row: Any) -> dict[str, Any]:
    out = {f: getattr(row, f) for f in TENANT_FIELDS}
    out["bay"] = row.bay_uuid
    return out


def volume_view(row: Any) -> dict[str, Any]:
    out = {f: getattr(row, f) for f in VOLUME_FIELDS}
    out["tenant"] = row.tenant_id
    return out


async def find_tenant(session: AsyncSession, ctx: RequestContext, tenant_id: str) -> TenantRow:
    """A tenant the caller may see (its own project's; admins see all); 404 otherwise."""
    row = await session.get(TenantRow, tenant_id)
    if row is None or (not ctx.is_admin and row.project_id != ctx.project_id):
        raise errors.NotFound(f"tenant {tenant_id} could not be found", field="tenant")
    return row


async def check_tenant_service(url: str, tenant_id: str) -> None:
    """The seed's TENANT_SERVICE_URL rule: GET {url}/{id} must answer 200."""
    target = f"{url.rstrip('/')}/{tenant_id}"
    try:
        async with httpx.AsyncClient(timeout=TENANT_SERVICE_TIMEOUT, trust_env=False) as client:
            resp = await client.get(target)
    except httpx.HTTPError as exc:
        raise errors.ServiceUnavailable(f"the tenant service at {target} cannot be reached: {exc}") from exc
    if resp.status_code != 200:
        raise errors.InvalidInput(f"id: the tenant service does not know tenant {tenant_id} "
                                  f"(GET {target} answered HTTP {resp.status_code})", field="id")


@router.post("", status_code=201, summary="Create a tenant and its namespace in a bay")
async def create_tenant(body: TenantCreate, ctx: WriterDep, session: SessionDep,
                        conductor: ConductorDep, state: StateDep) -> Response:
    service = state.settings.tenant_service_url
    if service and body.id is None:
        raise errors.InvalidInput("id: required when a tenant service is configured (the id must be one "
                                  "it knows)", field="id")
    tenant_id = check_tenant_id(body.id if body.id is not None else new_tenant_id())
    try:
        bay = await find_bay(session, ctx, body.bay)
    except errors.NotFound as exc:
        raise errors.InvalidInput(f"bay: {exc.detail}", field="bay") from exc
    if bay.status not in USABLE_BAY_STATES:
        raise errors.InvalidState(f"bay {bay.uuid} is {bay.status}; tenants need a bay that is "
                                  "CREATE_COMPLETE", field="bay")
    if await session.get(TenantRow, tenant_id) is not None:
        raise errors.Conflict(f"a tenant with id {tenant_id} already exists", field="id")
    if service:
        await check_tenant_service(service, tenant_id)
    tenant = Tenant(id=tenant_id, name=body.name, project_id=ctx.project_id, user_id=ctx.user_id,
                    bay_uuid=bay.uuid, namespace=tenant_id, template=default_template())
    created: Tenant = await conductor.call(ctx, "tenant_create", tenant=tenant)
    return json_response(tenant_view(created), 201)


@router.get("", summary="List tenants")
async def list_tenants(request: Request, ctx: ContextDep, session: SessionDep,
                       limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                       marker: str | None = None, sort_key: str = "created_at", sort_dir: str = "asc",
                       all_projects: AllProjectsDep = False) -> Response:
    stmt = scoped(select(TenantRow), TenantRow, visible_project(ctx, all_projects))
    rows = await paginate(session, stmt, TenantRow, limit=limit, marker=marker, sort_key=sort_key,
                          sort_dir=sort_dir, allowed_sort_keys=SORT_KEYS)
    out: dict[str, Any] = {"tenants": [tenant_view(r) for r in rows]}
    nxt = next_link(request, "tenants", rows, limit, {"sort_key": sort_key, "sort_dir": sort_dir,
                                                      "all_projects": all_projects})
    if nxt:
        out["next"] = nxt
    return json_response(out)


@router.get("/{tenant_id}", summary="Show a tenant")
async def show_tenant(tenant_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    return json_response(tenant_view(await find_tenant(session, ctx, tenant_id)))


@router.delete("/{tenant_id}", status_code=204,
               summary="Delete a tenant and its namespace (409 while jobs run, unless force=true)")
async def delete_tenant(tenant_id: str, ctx: WriterDep, session: SessionDep, conductor: ConductorDep,
                        force: bool = False) -> Response:
    row = await find_tenant(session, ctx, tenant_id)
    await conductor.call(ctx, "tenant_delete", tenant_id=row.id, force=force)
    return Response(status_code=204)


@router.get("/{tenant_id}/template", summary="The tenant's Job template")
async def show_template(tenant_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    return json_response((await find_tenant(session, ctx, tenant_id)).template)


@router.put("/{tenant_id}/template", summary="Replace the tenant's Job template (validated)")
async def set_template(tenant_id: str, template: Annotated[Any, Body()], ctx: WriterDep,
                       session: SessionDep) -> Response:
    row = await find_tenant(session, ctx, tenant_id)
    checked = validate_template(template)
    await session.execute(update(TenantRow).where(TenantRow.id == row.id)
                          .values(template=checked, updated_at=utcnow())
                          .execution_options(synchronize_session=False))
    await session.commit()
    return json_response(checked)


@router.post("/{tenant_id}/volumes", status_code=201,
             summary="Create a PersistentVolumeClaim in the tenant's namespace")
async def create_volume(tenant_id: str, body: VolumeCreate, ctx: WriterDep, session: SessionDep,
                        conductor: ConductorDep) -> Response:
    row = await find_tenant(session, ctx, tenant_id)
    if not is_claim_name(body.name):
        raise errors.InvalidInput(f"name: {body.name!r} is not a valid claim name (a DNS-1123 subdomain: "
                                  "lower-case letters, digits, '-' and '.')", field="name")
    quantity = QUANTITY.match(body.size)
    if quantity is None or float(quantity.group(1)) <= 0:
        raise errors.InvalidInput(f"size: {body.size!r} is not a positive quantity such as 1Gi or 500Mi",
                                  field="size")
    existing = await session.get(TenantVolumeRow, (row.id, body.name))
    if existing is not None and existing.status != "Deleted":
        raise errors.Conflict(f"tenant {row.id} already has a volume named {body.name}", field="name")
    volume = TenantVolume(tenant_id=row.id, name=body.name, size=body.size)
    created: TenantVolume = await conductor.call(ctx, "volume_create", volume=volume)
    return json_response(volume_view(created), 201)


@router.get("/{tenant_id}/volumes", summary="List the tenant's volumes")
async def list_volumes(tenant_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    row = await find_tenant(session, ctx, tenant_id)
    rows = await session.execute(select(TenantVolumeRow).where(TenantVolumeRow.tenant_id == row.id)
                                 .order_by(TenantVolumeRow.created_at, TenantVolumeRow.name))
    return json_response({"volumes": [volume_view(v) for v in rows.scalars()]})


@router.delete("/{tenant_id}/volumes/{name}", status_code=204,
               summary="Delete a volume (409 while a running job mounts it)")
async def delete_volume(tenant_id: str, name: str, ctx: WriterDep, session: SessionDep,
                        conductor: ConductorDep) -> Response:
    row = await find_tenant(session, ctx, tenant_id)
    if await session.get(TenantVolumeRow, (row.id, name)) is None:
        raise errors.NotFound(f"tenant {row.id} has no volume named {name}", field="name")
    await conductor.call(ctx, "volume_delete", tenant_id=row.id, name=name)
    return Response(status_code=204)
