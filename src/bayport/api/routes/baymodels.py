"""/v1/baymodels and /v1/clustertemplates: one resource under two names.

Templates are plain rows (no conductor work): create, list, show, patch, delete.
A template another project published (``public``) is visible, never writable.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.api.deps import AllProjectsDep, ContextDep, SessionDep, WriterDep, visible_project
from bayport.api.jsonpatch import PatchOp, apply_patch
from bayport.api.schemas import BAYMODEL_UPDATABLE, BAYMODEL_UPDATABLE_IN_USE, BayModelCreate
from bayport.api.views import baymodel_view, json_response, next_link
from bayport.db.models import BayModelRow, BayRow
from bayport.db.repo import columns, get_by_ident, paginate
from bayport.objects.context import RequestContext

SORT_KEYS = {"name", "created_at", "uuid", "coe", "driver"}


def visible_baymodels(ctx: RequestContext, project: str | None, *, listing: bool
                      ) -> Select[Any]:
    stmt = columns(BayModelRow) if listing else select(BayModelRow)
    if project is not None:
        stmt = stmt.where(or_(BayModelRow.project_id == project, BayModelRow.public.is_(True)))
    if listing and not ctx.is_admin:
        stmt = stmt.where(or_(BayModelRow.hidden.is_(False), BayModelRow.project_id == ctx.project_id))
    return stmt


async def find_baymodel(session: AsyncSession, ctx: RequestContext, ident: str) -> BayModelRow:
    project = None if ctx.is_admin else ctx.project_id
    row: BayModelRow = await get_by_ident(session, visible_baymodels(ctx, project, listing=False),
                                          BayModelRow, ident, kind="baymodel")
    return row


def _owned(ctx: RequestContext, row: BayModelRow) -> None:
    if row.project_id != ctx.project_id and not ctx.is_admin:
        # Visible because public, but it belongs to someone else.
        raise errors.Forbidden(f"baymodel {row.uuid} belongs to another project")


async def _in_use(session: AsyncSession, uuid: str) -> bool:
    stmt = select(BayRow.uuid).where(BayRow.baymodel_id == uuid).limit(1)
    return (await session.execute(stmt)).first() is not None


def build_router(plural: str) -> APIRouter:
    router = APIRouter(prefix=f"/v1/{plural}", tags=[plural])

    @router.post("", status_code=201, summary=f"Create a {plural[:-1]}")
    async def create(request: Request, body: BayModelCreate, ctx: WriterDep,
                     session: SessionDep) -> dict[str, Any]:
        data = body.model_dump()
        if data["network_driver"] is None and data["driver"] == "local":
            data["network_driver"] = "bayport"
        row = BayModelRow(project_id=ctx.project_id, user_id=ctx.user_id, **data)
        session.add(row)
        await session.commit()
        return baymodel_view(request, row, plural)

    async def _list(request: Request, ctx: RequestContext, session: AsyncSession, limit: int | None,
                    marker: str | None, sort_key: str, sort_dir: str, all_projects: bool,
                    detail: bool) -> Response:
        project = visible_project(ctx, all_projects)
        stmt = visible_baymodels(ctx, project, listing=True)
        rows = await paginate(session, stmt, BayModelRow, limit=limit, marker=marker,
                              sort_key=sort_key, sort_dir=sort_dir, allowed_sort_keys=SORT_KEYS)
        out: dict[str, Any] = {plural: [baymodel_view(request, r, plural, detail=detail) for r in rows]}
        nxt = next_link(request, plural, rows, limit, {"sort_key": sort_key, "sort_dir": sort_dir,
                                                       "all_projects": all_projects})
        if nxt:
            out["next"] = nxt
        return json_response(out)

    @router.get("", summary=f"List {plural}")
    async def list_(request: Request, ctx: ContextDep, session: SessionDep,
                    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                    marker: str | None = None, sort_key: str = "created_at",
                    sort_dir: str = "asc", all_projects: AllProjectsDep = False) -> Response:
        return await _list(request, ctx, session, limit, marker, sort_key, sort_dir, all_projects,
                           detail=False)

    @router.get("/detail", summary=f"List {plural} with every field")
    async def detail(request: Request, ctx: ContextDep, session: SessionDep,
                     limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                     marker: str | None = None, sort_key: str = "created_at",
                     sort_dir: str = "asc", all_projects: AllProjectsDep = False) -> Response:
        return await _list(request, ctx, session, limit, marker, sort_key, sort_dir, all_projects,
                           detail=True)

    @router.get("/{ident}", summary=f"Show one {plural[:-1]} by uuid or name")
    async def show(request: Request, ident: str, ctx: ContextDep, session: SessionDep
                   ) -> Response:
        return json_response(baymodel_view(request, await find_baymodel(session, ctx, ident), plural))

    @router.patch("/{ident}", summary=f"Update a {plural[:-1]} with a JSON patch")
    async def update(request: Request, ident: str, ops: Annotated[list[PatchOp], Body()],
                     ctx: WriterDep, session: SessionDep) -> dict[str, Any]:
        row = await find_baymodel(session, ctx, ident)
        _owned(ctx, row)
        allowed = BAYMODEL_UPDATABLE_IN_USE if await _in_use(session, row.uuid) else BAYMODEL_UPDATABLE
        if allowed is BAYMODEL_UPDATABLE_IN_USE:
            for op in ops:
                field = op.path.lstrip("/").split("/")[0]
                if field in BAYMODEL_UPDATABLE and field not in allowed:
                    raise errors.InvalidState(
                        f"baymodel {row.uuid} is used by a bay: only /name, /public and /hidden "
                        f"can change, not {op.path}", field=field)
        current = {f: getattr(row, f) for f in BayModelCreate.model_fields}
        patched = apply_patch(current, ops, allowed)
        try:
            valid = BayModelCreate.model_validate(patched)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise errors.InvalidInput(f"{field}: {first['msg']}", field=field) from exc
        for f in allowed:
            setattr(row, f, getattr(valid, f))
        await session.commit()
        return baymodel_view(request, row, plural)

    @router.delete("/{ident}", status_code=204, summary=f"Delete an unused {plural[:-1]}")
    async def delete(ident: str, ctx: WriterDep, session: SessionDep) -> Response:
        row = await find_baymodel(session, ctx, ident)
        _owned(ctx, row)
        if await _in_use(session, row.uuid):
            raise errors.Conflict(f"baymodel {row.uuid} is used by at least one bay and cannot be "
                                  "deleted", field="ident")
        await session.delete(row)
        await session.commit()
        return Response(status_code=204)

    return router


__all__ = ["build_router", "find_baymodel"]
