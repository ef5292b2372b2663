"""/v1/pods, /v1/services and /v1/rcs share one router factory, as bays and clusters do.

Create validates the manifest here (parse, convert to v1, kind, required fields; a
``manifest_url`` is fetched first under the SSRF rules), writes the row ``Creating`` and
``call``s the conductor, which creates the object in the bay and answers with the row as the
cluster left it; if the conductor refuses (a namespace the bay lacks, the cluster's own
validation), the row is removed again, so nothing is created. Status after that is kept
current by the conductor's watch, never polled here. ``pods.py``, ``services.py`` and
``rcs.py`` each build one router from this module.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import StringConstraints
from sqlalchemy import Select, delete, select, update
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
from bayport.api.jsonpatch import PatchOp, apply_patch
from bayport.api.quotas import admission, admit
from bayport.api.routes.bays import find_bay
from bayport.api.schemas import Name, Strict
from bayport.api.views import links, next_link
from bayport.db.models import BayRow
from bayport.db.repo import is_uuid, paginate, scoped
from bayport.db.workloads import WorkloadRow
from bayport.kube.fetch import fetch_manifest
from bayport.kube.kinds import POD, RC, Prepared, WorkloadKind, prepare
from bayport.objects.context import RequestContext
from bayport.objects.states import BayStatus
from bayport.objects.workload import COMMON_FIELDS, WORKLOAD_CLASSES, Workload
from bayport.rpc import RPCClient

log = logging.getLogger(__name__)

SORT_KEYS = {"name", "namespace", "created_at", "updated_at", "uuid", "status"}
SUMMARY = ("uuid", "name", "namespace", "bay_uuid", "status", "labels")
# Workloads live in bays whose cluster is up (an update in flight keeps it up).
USABLE_BAY_STATES = (BayStatus.CREATE_COMPLETE, BayStatus.UPDATE_COMPLETE, BayStatus.UPDATE_IN_PROGRESS,
                     BayStatus.UPDATE_FAILED)
MAX_REPLICAS = 10_000
ManifestText = Annotated[str, StringConstraints(max_length=2 * 1024 * 1024)]
UrlText = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class WorkloadCreate(Strict):
    """POST body of Magnum's seed era: the bay and the manifest, inline or by URL."""

    bay_uuid: Name
    manifest: ManifestText | None = None
    manifest_url: UrlText | None = None


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def workload_view(request: Request, item: WorkloadRow | Workload, kind: WorkloadKind, *,
                  detail: bool = True) -> dict[str, Any]:
    fields = (*COMMON_FIELDS, *kind.fields) if detail else (*SUMMARY, *kind.summary)
    out = {f: _iso(getattr(item, f, None)) for f in fields}
    out["links"] = links(request, kind.plural, item.uuid)
    return out


def require_usable(bay: BayRow) -> None:
    if bay.status not in USABLE_BAY_STATES:
        raise errors.InvalidState(
            f"bay {bay.uuid} is {bay.status}; workloads need one of "
            + ", ".join(s.value for s in USABLE_BAY_STATES), field="bay_uuid")


async def bay_for_create(session: AsyncSession, ctx: RequestContext, ident: str) -> BayRow:
    try:
        bay = await find_bay(session, ctx, ident)
    except errors.NotFound as exc:
        raise errors.InvalidInput(f"bay_uuid: {exc.detail}", field="bay_uuid") from exc
    require_usable(bay)
    return bay


async def manifest_text(state_allow_private: bool, manifest: str | None, url: str | None) -> str:
    """The manifest to use: inline, or fetched from ``url``; exactly one must be given."""
    if manifest is not None and url is None:
        return manifest
    if manifest is None and url is not None:
        return await fetch_manifest(url, allow_private=state_allow_private)
    raise errors.InvalidInput("give exactly one of manifest and manifest_url", field="manifest")


async def find_workload(session: AsyncSession, ctx: RequestContext, kind: WorkloadKind, ident: str,
                        bay_ident: str | None = None, namespace: str | None = None) -> WorkloadRow:
    """By uuid (deleted rows too), or by name among live rows; 404 outside the caller's project."""
    stmt = scoped(select(WorkloadRow), WorkloadRow, None if ctx.is_admin else ctx.project_id)
    stmt = stmt.where(WorkloadRow.kind == kind.kind)
    if bay_ident:
        bay = await find_bay(session, ctx, bay_ident)
        stmt = stmt.where(WorkloadRow.bay_uuid == bay.uuid)
    if is_uuid(ident):
        row: WorkloadRow | None = (
            await session.execute(stmt.where(WorkloadRow.uuid == ident.lower()))).scalar_one_or_none()
        if row is not None:
            return row
    stmt = stmt.where(WorkloadRow.name == ident, WorkloadRow.deleted_at.is_(None))
    if namespace:
        stmt = stmt.where(WorkloadRow.namespace == namespace)
    rows: list[WorkloadRow] = list((await session.execute(stmt.limit(2))).scalars().all())
    if not rows:
        raise errors.NotFound(f"{kind.kind} {ident} could not be found", field="ident")
    if len(rows) > 1:
        raise errors.AmbiguousName(f"more than one {kind.kind} is named {ident!r}; give ?bay_ident= "
                                   "and ?namespace=, or use its uuid", field="name")
    return rows[0]


def _already_exists(kind: WorkloadKind, bay_ident: str, prepared: Prepared) -> errors.Conflict:
    return errors.Conflict(f"a {kind.kind} named {prepared.name!r} already exists in namespace "
                           f"{prepared.namespace!r} of bay {bay_ident}", field="metadata.name")


def _replicas(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REPLICAS:
        raise errors.InvalidInput(f"replicas must be an integer from 0 to {MAX_REPLICAS}, not {value!r}",
                                  field="replicas")
    return value


def build_router(kind: WorkloadKind) -> APIRouter:
    plural, noun = kind.plural, kind.kind
    arg = {"pods": "pod", "services": "service"}.get(plural, "rc")
    router = APIRouter(prefix=f"/v1/{plural}", tags=[plural])

    @router.post("", status_code=201, summary=f"Create a {noun} in a bay from a manifest")
    async def create(request: Request, body: WorkloadCreate, ctx: WriterDep, session: SessionDep,
                     conductor: ConductorDep, state: StateDep) -> dict[str, Any]:
        bay = await bay_for_create(session, ctx, body.bay_uuid)
        text = await manifest_text(state.settings.allow_private_manifest_urls, body.manifest,
                                   body.manifest_url)
        prepared = prepare(text, kind)
        bay_ident = bay.name or bay.uuid  # read now: a rollback expires the row
        row = WorkloadRow(kind=noun, project_id=bay.project_id, user_id=ctx.user_id, bay_uuid=bay.uuid,
                          manifest=text, manifest_url=body.manifest_url, status="Creating",
                          **prepared.values)
        try:
            async with admission(session, bay.project_id):
                if kind is POD:
                    await admit(session, state.settings.quota_defaults, bay.project_id, {"Pod": 1})
                session.add(row)
                await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            if "unique" not in str(exc.orig).lower():
                raise errors.Conflict(f"bay {bay_ident} changed while the {noun} was being created",
                                      field="bay_uuid") from exc
            raise _already_exists(kind, bay_ident, prepared) from exc
        obj = WORKLOAD_CLASSES[noun].of_row(row)
        result = await _call(session, conductor, ctx, row, f"{kind.prefix}_create",
                             **{arg: obj, "body": prepared.body})
        return workload_view(request, result, kind)

    async def _list(request: Request, ctx: RequestContext, session: AsyncSession, bay_ident: str | None,
                    limit: int | None, marker: str | None, sort_key: str, sort_dir: str,
                    all_projects: bool, show_deleted: bool, detail: bool) -> dict[str, Any]:
        stmt: Select[Any] = scoped(select(WorkloadRow), WorkloadRow, visible_project(ctx, all_projects))
        stmt = stmt.where(WorkloadRow.kind == noun)
        if bay_ident:
            bay = await find_bay(session, ctx, bay_ident)
            stmt = stmt.where(WorkloadRow.bay_uuid == bay.uuid)
        if not show_deleted:
            stmt = stmt.where(WorkloadRow.deleted_at.is_(None))
        rows = await paginate(session, stmt, WorkloadRow, limit=limit, marker=marker, sort_key=sort_key,
                              sort_dir=sort_dir, allowed_sort_keys=SORT_KEYS)
        out: dict[str, Any] = {plural: [workload_view(request, r, kind, detail=detail) for r in rows]}
        nxt = next_link(request, plural, rows, limit, {
            "bay_ident": bay_ident, "sort_key": sort_key, "sort_dir": sort_dir,
            "all_projects": all_projects, "show_deleted": show_deleted})
        if nxt:
            out["next"] = nxt
        return out

    @router.get("", summary=f"List {plural}")
    async def list_(request: Request, ctx: ContextDep, session: SessionDep,
                    bay_ident: Annotated[str | None, Query(description="only this bay's")] = None,
                    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                    marker: str | None = None, sort_key: str = "created_at", sort_dir: str = "asc",
                    all_projects: AllProjectsDep = False,
                    show_deleted: Annotated[bool, Query(description="include objects deleted in the "
                                                                    "cluster outside Bayport")] = False
                    ) -> dict[str, Any]:
        return await _list(request, ctx, session, bay_ident, limit, marker, sort_key, sort_dir,
                           all_projects, show_deleted, detail=False)

    @router.get("/detail", summary=f"List {plural} with every field")
    async def detail(request: Request, ctx: ContextDep, session: SessionDep,
                     bay_ident: str | None = None,
                     limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
                     marker: str | None = None, sort_key: str = "created_at", sort_dir: str = "asc",
                     all_projects: AllProjectsDep = False, show_deleted: bool = False) -> dict[str, Any]:
        return await _list(request, ctx, session, bay_ident, limit, marker, sort_key, sort_dir,
                           all_projects, show_deleted, detail=True)

    @router.get("/{ident}", summary=f"Show one {noun} by uuid or name")
    async def show(request: Request, ident: str, ctx: ContextDep, session: SessionDep,
                   bay_ident: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        return workload_view(request, await find_workload(session, ctx, kind, ident, bay_ident,
                                                          namespace), kind)

    updatable = {"manifest", "manifest_url"} | ({"replicas"} if kind is RC else set())

    @router.patch("/{ident}", summary="JSON patch: " + ", ".join(f"/{f}" for f in sorted(updatable)))
    async def update_(request: Request, ident: str, ops: Annotated[list[PatchOp], Body()],
                      ctx: WriterDep, session: SessionDep, conductor: ConductorDep, state: StateDep,
                      bay_ident: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        row = await find_workload(session, ctx, kind, ident, bay_ident, namespace)
        if row.deleted_at is not None:
            raise errors.InvalidState(f"{noun} {row.uuid} was deleted in the cluster", field="status")
        bay = await session.get(BayRow, row.bay_uuid)
        if bay is not None:
            require_usable(bay)
        current: dict[str, Any] = {"manifest": row.manifest, "manifest_url": row.manifest_url}
        if kind is RC:
            current["replicas"] = row.replicas
        patched = apply_patch(current, ops, updatable)
        args: dict[str, Any] = {f"{arg}_uuid": row.uuid}
        if kind is RC and patched.get("replicas") != row.replicas:
            args["replicas"] = _replicas(patched.get("replicas"))
        if patched["manifest"] != row.manifest or patched["manifest_url"] != row.manifest_url:
            url = patched["manifest_url"] if patched["manifest_url"] != row.manifest_url else None
            text = await manifest_text(state.settings.allow_private_manifest_urls,
                                       None if url else patched["manifest"], url)
            prepared = prepare(text, kind)
            for path, new, old in (("metadata.name", prepared.name, row.name),
                                   ("metadata.namespace", prepared.namespace, row.namespace)):
                if new != old:
                    raise errors.InvalidManifest(f"{path}: {new!r} differs from {old!r}; a new name "
                                                 "is a new object: create it instead", field=path)
            args.update(body=prepared.body, manifest=text, manifest_url=url)
        if len(args) == 1:
            return workload_view(request, row, kind)
        result = await conductor.call(ctx, f"{kind.prefix}_update", **args)
        return workload_view(request, result, kind)

    @router.delete("/{ident}", status_code=204, summary=f"Delete a {noun} (and its Kubernetes object)")
    async def delete_(ident: str, ctx: WriterDep, session: SessionDep, conductor: ConductorDep,
                      bay_ident: str | None = None, namespace: str | None = None) -> Response:
        row = await find_workload(session, ctx, kind, ident, bay_ident, namespace)
        if row.deleted_at is None:
            bay = await session.get(BayRow, row.bay_uuid)
            if bay is not None and bay.status != BayStatus.DELETE_IN_PROGRESS:
                require_usable(bay)
        target: dict[str, Any] = {f"{arg}_uuid": row.uuid}
        await conductor.call(ctx, f"{kind.prefix}_delete", **target)
        return Response(status_code=204)

    return router


async def _call(session: AsyncSession, conductor: RPCClient, ctx: RequestContext, row: WorkloadRow,
                method: str, **args: Any) -> Workload:
    """``call`` the conductor to create the object; on refusal the row goes, as if never written.

    On a timeout the outcome is unknown: the row stays, says so, and the watch records the
    object if it was created after all.
    """
    try:
        result: Workload = await conductor.call(ctx, method, **args)
        return result
    except errors.RPCTimeout:
        await session.execute(update(WorkloadRow).where(WorkloadRow.uuid == row.uuid,
                                                        WorkloadRow.status == "Creating")
                              .values(status="Unknown", status_reason="the conductor did not answer "
                                      "in time; the status appears once the cluster reports it")
                              .execution_options(synchronize_session=False))
        await session.commit()
        raise
    except Exception:
        await session.execute(delete(WorkloadRow).where(WorkloadRow.uuid == row.uuid))
        await session.commit()
        raise
