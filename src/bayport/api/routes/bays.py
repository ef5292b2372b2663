"""/v1/bays and /v1/clusters: validate, write the row IN_PROGRESS, cast to the conductor.

The conductor moves the status to a terminal state (see objects/states.py); the
API answers at once (201 for bays as in Magnum's seed era, 202 for clusters).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import yaml
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
from bayport.api.jsonpatch import PatchOp, apply_patch
from bayport.api.quotas import admission, admit
from bayport.api.routes.baymodels import find_baymodel
from bayport.api.schemas import BayCreate, ClusterCreate
from bayport.api.views import bay_view, json_response, next_link
from bayport.db.base import utcnow
from bayport.db.models import BayCredential, BayModelRow, BayRow
from bayport.db.repo import columns, get_by_ident, paginate, scoped
from bayport.drivers.registry import check_node_count
from bayport.objects.bay import Bay
from bayport.objects.context import RequestContext
from bayport.objects.states import OPERATIONS, BayStatus
from bayport.rpc import RPCClient

SORT_KEYS = {"name", "created_at", "uuid", "status", "node_count"}


async def find_bay(session: AsyncSession, ctx: RequestContext, ident: str) -> BayRow:
    """A bay the caller may see (admins see all); another project's bay is a 404."""
    stmt = scoped(select(BayRow), BayRow, None if ctx.is_admin else ctx.project_id)
    row: BayRow = await get_by_ident(session, stmt, BayRow, ident, kind="bay")
    return row


def bay_object(row: BayRow) -> Bay:
    return Bay.loaded(**{f: getattr(row, f) for f in Bay.model_fields})


async def start_operation(session: AsyncSession, row: BayRow, op: str, *, reason: str,
                          **values: Any) -> None:
    """Move ``row`` into the operation's IN_PROGRESS state if its current state allows it.

    A conditional UPDATE, so two API workers racing on one bay cannot both start.
    """
    allowed, running, _, _ = OPERATIONS[op]
    uuid, current = row.uuid, row.status  # a rollback below expires the row's attributes
    result = await session.execute(
        update(BayRow).where(BayRow.uuid == row.uuid, BayRow.status.in_([s.value for s in allowed]))
        .values(status=running.value, status_reason=reason, conductor_id=None,
                deadline_at=utcnow() + timedelta(minutes=row.create_timeout or 60), **values)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        latest = await session.get(BayRow, uuid)
        raise errors.InvalidState(
            f"bay {uuid} is {latest.status if latest else current}; {op} needs one of "
            + ", ".join(sorted(s.value for s in allowed)), field="status")
    await session.commit()
    await session.refresh(row)


async def cast_or_fail(session: AsyncSession, conductor: RPCClient, ctx: RequestContext, row: BayRow,
                       method: str, failure: BayStatus, **args: Any) -> None:
    """Hand the work to a conductor; if the bus refuses, the row says why instead of hanging."""
    try:
        await conductor.cast(ctx, method, **args)
    except errors.BayportError as exc:
        row.status = failure.value
        row.status_reason = f"could not reach a conductor: {exc.detail}"
        await session.commit()
        raise errors.ServiceUnavailable(f"the conductor could not be reached: {exc.detail}") from exc


def build_router(plural: str) -> APIRouter:
    router = APIRouter(prefix=f"/v1/{plural}", tags=[plural])
    is_bays = plural == "bays"

    async def _create(request: Request, body: BayCreate | ClusterCreate, ctx: RequestContext,
                      session: AsyncSession, conductor: RPCClient, state_timeout: int,
                      quota_defaults: dict[str, int]) -> BayRow:
        if isinstance(body, BayCreate):
            template_ident, timeout = body.baymodel_id, body.bay_create_timeout
        else:
            template_ident, timeout = body.cluster_template_id, body.create_timeout
        try:
            template = await find_baymodel(session, ctx, template_ident)
        except errors.NotFound as exc:
            field = "baymodel_id" if is_bays else "cluster_template_id"
            raise errors.InvalidInput(f"{field}: {exc.detail}", field=field) from exc
        check_node_count(template.driver, masters=body.master_count, nodes=body.node_count)
        create_timeout = timeout if timeout else state_timeout
        row = BayRow(name=body.name, project_id=ctx.project_id, user_id=ctx.user_id,
                     baymodel_id=template.uuid, node_count=body.node_count,
                     master_count=body.master_count, discovery_url=body.discovery_url,
                     create_timeout=create_timeout, labels={**template.labels, **body.labels},
                     status=BayStatus.CREATE_IN_PROGRESS.value,
                     status_reason="waiting for a conductor",
                     deadline_at=utcnow() + timedelta(minutes=create_timeout))
        async with admission(session, ctx.project_id):
            await admit(session, quota_defaults, ctx.project_id,
                        {"Cluster": 1, "Node": body.master_count + body.node_count, "Operation": 1,
                         "CreateTimeout": create_timeout})
            session.add(row)
            await session.commit()
        await cast_or_fail(session, conductor, ctx, row, "bay_create", BayStatus.CREATE_FAILED,
                           bay=bay_object(row))
        return row

    if is_bays:
        @router.post("", status_code=201, summary="Create a bay (asynchronous)")
        async def create_bay(request: Request, body: BayCreate, ctx: WriterDep, session: SessionDep,
                             conductor: ConductorDep, state: StateDep) -> dict[str, Any]:
            row = await _create(request, body, ctx, session, conductor,
                                state.settings.default_create_timeout_minutes,
                                state.settings.quota_defaults)
            return bay_view(request, row, plural)
    else:
        @router.post("", status_code=202, summary="Create a cluster (asynchronous)")
        async def create_cluster(request: Request, body: ClusterCreate, ctx: WriterDep,
                                 session: SessionDep, conductor: ConductorDep, state: StateDep
                                 ) -> dict[str, Any]:
            row = await _create(request, body, ctx, session, conductor,
                                state.settings.default_create_timeout_minutes,
                                state.settings.quota_defaults)
            return {"uuid": row.uuid}

    async def _list(request: Request, ctx: RequestContext, session: AsyncSession, limit: int | None,
                    marker: str | None, sort_key: str, sort_dir: str, all_projects: bool,
                    detail: bool) -> Response:
        stmt = scoped(columns(BayRow), BayRow, visible_project(ctx, all_projects))
        rows = await paginate(session, stmt, BayRow, limit=limit, marker=marker, sort_key=sort_key,
                              sort_dir=sort_dir, allowed_sort_keys=SORT_KEYS)
        out: dict[str, Any] = {plural: [bay_view(request, r, plural, detail=detail) for r in rows]}
        nxt = next_link(request, plural, rows, limit, {"sort_key": sort_key, "sort_dir": sort_dir,
                                                       "all_projects": all_projects})
        if nxt:
            out["next"] = nxt
        return json_response(out)

    @router.get("", summary=f"List {plural}")
    async def list_(request: Request, ctx: ContextDep, session: SessionDep,
                    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                    marker: str | None = None, sort_key: str = "created_at", sort_dir: str = "asc",
                    all_projects: AllProjectsDep = False) -> Response:
        return await _list(request, ctx, session, limit, marker, sort_key, sort_dir, all_projects,
                           detail=False)

    @router.get("/detail", summary=f"List {plural} with every field")
    async def detail(request: Request, ctx: ContextDep, session: SessionDep,
                     limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                     marker: str | None = None, sort_key: str = "created_at", sort_dir: str = "asc",
                     all_projects: AllProjectsDep = False) -> Response:
        return await _list(request, ctx, session, limit, marker, sort_key, sort_dir, all_projects,
                           detail=True)

    @router.get("/{ident}", summary=f"Show one {plural[:-1]} by uuid or name")
    async def show(request: Request, ident: str, ctx: ContextDep, session: SessionDep
                   ) -> Response:
        return json_response(bay_view(request, await find_bay(session, ctx, ident), plural))

    @router.patch("/{ident}", status_code=202, summary="Resize: replace /node_count")
    async def update_(request: Request, ident: str, ops: Annotated[list[PatchOp], Body()],
                      ctx: WriterDep, session: SessionDep, conductor: ConductorDep,
                      state: StateDep) -> dict[str, Any]:
        row = await find_bay(session, ctx, ident)
        patched = apply_patch({"node_count": row.node_count}, ops, {"node_count"})
        node_count = patched["node_count"]
        if isinstance(node_count, str) and node_count.strip().isdigit():
            node_count = int(node_count)
        if isinstance(node_count, bool) or not isinstance(node_count, int) or not 1 <= node_count <= 1000:
            raise errors.InvalidInput(f"node_count must be an integer from 1 to 1000, not {node_count!r}",
                                      field="node_count")
        template = await session.get(BayModelRow, row.baymodel_id)
        if template is not None:
            check_node_count(template.driver, masters=row.master_count, nodes=node_count)
        # The row holds the desired size; the conductor (or whoever takes over) drives to it.
        project, grows = row.project_id, node_count - row.node_count
        async with admission(session, project):
            await admit(session, state.settings.quota_defaults, project,
                        {"Node": grows, "Operation": 1})
            await start_operation(session, row, "update", reason=f"resizing to {node_count} nodes",
                                  node_count=node_count)
        await cast_or_fail(session, conductor, ctx, row, "bay_update", BayStatus.UPDATE_FAILED,
                           bay=bay_object(row), node_count=node_count)
        return bay_view(request, row, plural)

    @router.delete("/{ident}", status_code=204, summary=f"Delete a {plural[:-1]} (asynchronous)")
    async def delete(ident: str, ctx: WriterDep, session: SessionDep, conductor: ConductorDep
                     ) -> Response:
        row = await find_bay(session, ctx, ident)
        if row.status != BayStatus.DELETE_IN_PROGRESS:
            await start_operation(session, row, "delete", reason="deleting")
        # Casting again for a bay already deleting is the client's retry: harmless and
        # it revives a delete whose message was lost.
        await cast_or_fail(session, conductor, ctx, row, "bay_delete", BayStatus.DELETE_FAILED,
                           bay=bay_object(row))
        return Response(status_code=204)

    @router.get("/{ident}/config", summary="Kubeconfig for the bay (YAML)")
    async def config(ident: str, ctx: ContextDep, session: SessionDep) -> Response:
        row = await find_bay(session, ctx, ident)
        cred = await session.get(BayCredential, row.uuid)
        if cred is None or row.status not in (BayStatus.CREATE_COMPLETE, BayStatus.UPDATE_COMPLETE,
                                              BayStatus.UPDATE_FAILED, BayStatus.UPDATE_IN_PROGRESS):
            raise errors.InvalidState(f"bay {row.uuid} is {row.status}; its kubeconfig exists once it "
                                      "is CREATE_COMPLETE", field="status")
        if ctx.can_write:
            text = cred.kubeconfig or kubeconfig_yaml(row, cred.server, cred.ca_data, cred.token)
        elif cred.reader_token:
            text = kubeconfig_yaml(row, cred.server, cred.ca_data, cred.reader_token, user="reader")
        else:
            # Never the admin credential: a reader with it could change everything in the bay.
            raise errors.Forbidden(f"bay {row.uuid} has no read-only credential (its driver gives "
                                   "only an admin one); the reader role cannot have its kubeconfig")
        return Response(text, media_type="application/yaml")

    return router


def kubeconfig_yaml(row: BayRow, server: str, ca_data: str | None, token: str | None, *,
                    user: str = "admin") -> str:
    """A kubeconfig whose bearer token opens this bay's API and no other: the admin token for
    members and admins, the read-only one for readers."""
    name = row.name or row.uuid
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": f"{name}-{user}", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-{user}",
                                                "namespace": "default"}}],
        "current-context": name,
    }
    return yaml.safe_dump(doc, sort_keys=False)
