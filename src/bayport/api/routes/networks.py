"""/v1/networks, /v1/subnets and /v1/ports: the pod network in Neutron's response shapes.

Everything here reads or writes IPAM's tables (``bayport.network.ipam``) directly; the
pod-network controller is the one that creates and frees ports as pods come and go, so
ports are read-only. Members read their project's objects (filters ``?bay_ident=``,
``?namespace=``, ``?device_id=``, ``?network_id=``, ``?name=``); another project's are
404, exactly as if absent. Admins create a namespace's network ahead of its first pod
(``POST /v1/networks``, or ``POST /v1/subnets`` to choose the CIDR) and delete empty ones;
a namespace network has exactly one subnet, so deleting the subnet deletes the network.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field
from sqlalchemy import Select, Table, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.api.deps import AdminDep, AllProjectsDep, ContextDep, SessionDep, visible_project
from bayport.api.routes.bays import find_bay
from bayport.api.schemas import Name, Strict
from bayport.api.views import base_url, json_response
from bayport.db.network import NetworkRow, PortRow, SubnetRow
from bayport.network import ipam
from bayport.objects.context import RequestContext

NETWORKS: Table = NetworkRow.__table__  # type: ignore[assignment]
SUBNETS: Table = SubnetRow.__table__  # type: ignore[assignment]
PORTS: Table = PortRow.__table__  # type: ignore[assignment]
MAX_LIMIT = 1000
Limit = Annotated[int | None, Query(ge=1, le=MAX_LIMIT)]
Filter = Annotated[str | None, Query(max_length=255)]


# --- views ------------------------------------------------------------------------------------

def network_view(row: Any, subnet_ids: list[str]) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "tenant_id": row.project_id, "project_id": row.project_id,
            "status": row.status, "admin_state_up": True, "shared": False, "subnets": subnet_ids,
            "router:external": False, "bay_uuid": row.bay_uuid, "namespace": row.namespace,
            "created_at": row.created_at}


def subnet_view(row: Any) -> dict[str, Any]:
    body = ipam.neutron_subnet_dict(ipam.SubnetRecord.of(row._mapping))
    body.update(project_id=row.project_id, bay_uuid=row.bay_uuid, namespace=row.namespace,
                created_at=row.created_at)
    return body


def port_view(row: Any) -> dict[str, Any]:
    body = ipam.neutron_port_dict(ipam.PortRecord.of(row._mapping))
    body.update(project_id=row.project_id, bay_uuid=row.bay_uuid, namespace=row.namespace,
                created_at=row.created_at)
    return body


# --- queries ----------------------------------------------------------------------------------

def _scope(stmt: Select[Any], table: Table, ctx: RequestContext, all_projects: bool) -> Select[Any]:
    project = visible_project(ctx, all_projects)
    return stmt if project is None else stmt.where(table.c.project_id == project)


async def _bay_uuid(session: AsyncSession, ctx: RequestContext, bay_ident: str | None) -> str | None:
    return None if bay_ident is None else (await find_bay(session, ctx, bay_ident)).uuid


async def _page(session: AsyncSession, stmt: Select[Any], table: Table, limit: int | None,
                marker: str | None) -> list[Any]:
    """Keyset pages in creation order: rows after ``marker`` (an id this caller can see)."""
    if marker:
        found = (await session.execute(stmt.with_only_columns(table.c.created_at)
                                       .where(table.c.id == marker))).first()
        if found is None:
            raise errors.InvalidInput(f"marker {marker} is not a visible object", field="marker")
        after: datetime = found[0]
        stmt = stmt.where(or_(table.c.created_at > after,
                              and_(table.c.created_at == after, table.c.id > marker)))
    stmt = stmt.order_by(table.c.created_at, table.c.id).limit(min(limit or MAX_LIMIT, MAX_LIMIT))
    return list((await session.execute(stmt)).all())


def _listing(request: Request, plural: str, items: list[dict[str, Any]], limit: int | None
             ) -> Response:
    out: dict[str, Any] = {plural: items}
    if limit and len(items) == limit:
        query = request.url.include_query_params(marker=items[-1]["id"]).query
        out["next"] = f"{base_url(request)}{request.url.path}?{query}"
    return json_response(out)


def _show(ctx: RequestContext, stmt: Select[Any], table: Table) -> Select[Any]:
    """Admins see any object by id; others only their project's (the rest is a 404)."""
    return stmt if ctx.is_admin else stmt.where(table.c.project_id == ctx.project_id)


async def _subnet_ids(session: AsyncSession, network_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {n: [] for n in network_ids}
    if network_ids:
        rows = await session.execute(select(SUBNETS.c.network_id, SUBNETS.c.id)
                                     .where(SUBNETS.c.network_id.in_(network_ids))
                                     .order_by(SUBNETS.c.created_at))
        for network_id, subnet_id in rows:
            out[network_id].append(subnet_id)
    return out


def _subnets() -> Select[Any]:
    return select(*SUBNETS.c, NETWORKS.c.namespace).join(NETWORKS, NETWORKS.c.id == SUBNETS.c.network_id)


async def _network(session: AsyncSession, ctx: RequestContext, network_id: str) -> Any:
    row = (await session.execute(_show(ctx, select(NETWORKS), NETWORKS)
                                 .where(NETWORKS.c.id == network_id))).first()
    if row is None:
        raise errors.NotFound(f"network {network_id} could not be found", field="network_id")
    return row


async def _network_body(session: AsyncSession, network_id: str) -> dict[str, Any]:
    row = (await session.execute(select(NETWORKS).where(NETWORKS.c.id == network_id))).one()
    return network_view(row, (await _subnet_ids(session, [network_id]))[network_id])


async def _subnet(session: AsyncSession, ctx: RequestContext, subnet_id: str) -> Any:
    row = (await session.execute(_show(ctx, _subnets(), SUBNETS).where(SUBNETS.c.id == subnet_id))).first()
    if row is None:
        raise errors.NotFound(f"subnet {subnet_id} could not be found", field="subnet_id")
    return row


# --- networks ---------------------------------------------------------------------------------

class NetworkSpec(Strict):
    bay_ident: Name
    namespace: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class NetworkCreate(Strict):
    network: NetworkSpec


networks = APIRouter(prefix="/v1/networks", tags=["networks"])


@networks.get("", summary="List namespace networks")
async def list_networks(request: Request, ctx: ContextDep, session: SessionDep, bay_ident: Filter = None,
                        namespace: Filter = None, name: Filter = None, limit: Limit = None,
                        marker: str | None = None, all_projects: AllProjectsDep = False) -> Response:
    stmt = _scope(select(NETWORKS), NETWORKS, ctx, all_projects)
    bay_uuid = await _bay_uuid(session, ctx, bay_ident)
    for column, value in ((NETWORKS.c.bay_uuid, bay_uuid), (NETWORKS.c.namespace, namespace),
                          (NETWORKS.c.name, name)):
        if value is not None:
            stmt = stmt.where(column == value)
    rows = await _page(session, stmt, NETWORKS, limit, marker)
    subnets = await _subnet_ids(session, [r.id for r in rows])
    return _listing(request, "networks", [network_view(r, subnets[r.id]) for r in rows], limit)


@networks.get("/{network_id}", summary="Show a network")
async def show_network(network_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    row = await _network(session, ctx, network_id)
    return json_response({"network": network_view(row, (await _subnet_ids(session, [row.id]))[row.id])})


async def _create_namespace_network(session: AsyncSession, ctx: RequestContext, bay_ident: str,
                                    namespace: str, cidr: str | None = None) -> ipam.SubnetRecord:
    """The namespace's network and its one subnet (carved from the pod pool, or ``cidr``)."""
    bay = await find_bay(session, ctx, bay_ident)
    if await ipam.get_namespace_network(session, bay.uuid, namespace) is not None:
        raise errors.Conflict(f"namespace {namespace} of bay {bay.uuid} already has its network",
                              field="namespace")
    if cidr is None:
        _, subnet = await ipam.ensure_namespace_network(session, bay.uuid, bay.project_id, namespace)
    else:
        net = ipaddress.ip_network(cidr, strict=True)
        _, subnet = await ipam.ensure_namespace_network(session, bay.uuid, bay.project_id, namespace,
                                                        pod_pool=str(net), prefix=net.prefixlen)
    await session.commit()
    return subnet


@networks.post("", status_code=201, summary="Create a namespace's network (admin)")
async def create_network(body: NetworkCreate, ctx: AdminDep, session: SessionDep) -> Response:
    spec = body.network
    subnet = await _create_namespace_network(session, ctx, spec.bay_ident, spec.namespace)
    return json_response({"network": await _network_body(session, subnet.network_id)}, 201)


@networks.delete("/{network_id}", status_code=204, summary="Delete a network without ports (admin)")
async def delete_network(network_id: str, ctx: AdminDep, session: SessionDep) -> Response:
    row = await _network(session, ctx, network_id)
    await ipam.release_namespace_network(session, row.bay_uuid, row.namespace)
    await session.commit()
    return Response(status_code=204)


# --- subnets ----------------------------------------------------------------------------------

class SubnetSpec(Strict):
    network_id: str | None = None
    bay_ident: Name | None = None
    namespace: str | None = Field(default=None, min_length=1, max_length=253,
                                  pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    cidr: str | None = Field(default=None, max_length=43)
    ip_version: int = 4


class SubnetCreate(Strict):
    subnet: SubnetSpec


subnets = APIRouter(prefix="/v1/subnets", tags=["subnets"])


@subnets.get("", summary="List subnets")
async def list_subnets(request: Request, ctx: ContextDep, session: SessionDep, bay_ident: Filter = None,
                       namespace: Filter = None, network_id: Filter = None, name: Filter = None,
                       cidr: Filter = None, limit: Limit = None, marker: str | None = None,
                       all_projects: AllProjectsDep = False) -> Response:
    stmt = _scope(_subnets(), SUBNETS, ctx, all_projects)
    bay_uuid = await _bay_uuid(session, ctx, bay_ident)
    for column, value in ((SUBNETS.c.bay_uuid, bay_uuid), (NETWORKS.c.namespace, namespace),
                          (SUBNETS.c.network_id, network_id), (SUBNETS.c.name, name),
                          (SUBNETS.c.cidr, cidr)):
        if value is not None:
            stmt = stmt.where(column == value)
    rows = await _page(session, stmt, SUBNETS, limit, marker)
    return _listing(request, "subnets", [subnet_view(r) for r in rows], limit)


@subnets.get("/{subnet_id}", summary="Show a subnet")
async def show_subnet(subnet_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    return json_response({"subnet": subnet_view(await _subnet(session, ctx, subnet_id))})


@subnets.post("", status_code=201, summary="Create a namespace's network with this subnet (admin)")
async def create_subnet(body: SubnetCreate, ctx: AdminDep, session: SessionDep) -> Response:
    """Neutron's subnet create, for the one subnet of a namespace network: name the network
    (``network_id``) or the bay and namespace; ``cidr`` picks the range (default: the next
    free /24 of the bay's pod pool)."""
    spec = body.subnet
    if spec.ip_version != 4:
        raise errors.InvalidInput("pod networks are IPv4", field="ip_version")
    if spec.cidr is not None:
        _check_cidr(spec.cidr)
    if spec.network_id is not None:
        if spec.bay_ident is not None or spec.namespace is not None:
            raise errors.InvalidInput("give network_id, or bay_ident and namespace, not both",
                                      field="network_id")
        network = await _network(session, ctx, spec.network_id)
        raise errors.Conflict(f"network {network.id} already has its subnet; a namespace network "
                              "has exactly one", field="network_id")
    if spec.bay_ident is None or spec.namespace is None:
        raise errors.InvalidInput("give network_id, or bay_ident and namespace", field="network_id")
    subnet = await _create_namespace_network(session, ctx, spec.bay_ident, spec.namespace, spec.cidr)
    return json_response({"subnet": subnet_view(await _subnet(session, ctx, subnet.id))}, 201)


def _check_cidr(cidr: str) -> None:
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise errors.InvalidInput(f"{cidr!r} is not a network address in CIDR form: {exc}",
                                  field="cidr") from exc
    if net.version != 4 or not 8 <= net.prefixlen <= 29:
        raise errors.InvalidInput(f"{cidr} must be an IPv4 network from /8 to /29", field="cidr")


@subnets.delete("/{subnet_id}", status_code=204,
                summary="Delete a subnet and its namespace network, once without ports (admin)")
async def delete_subnet(subnet_id: str, ctx: AdminDep, session: SessionDep) -> Response:
    row = await _subnet(session, ctx, subnet_id)
    await ipam.release_namespace_network(session, row.bay_uuid, row.namespace)
    await session.commit()
    return Response(status_code=204)


# --- ports ------------------------------------------------------------------------------------

ports = APIRouter(prefix="/v1/ports", tags=["ports"])


@ports.get("", summary="List pod ports")
async def list_ports(request: Request, ctx: ContextDep, session: SessionDep, bay_ident: Filter = None,
                     namespace: Filter = None, device_id: Filter = None, network_id: Filter = None,
                     name: Filter = None, mac_address: Filter = None, limit: Limit = None,
                     marker: str | None = None, all_projects: AllProjectsDep = False) -> Response:
    stmt = _scope(select(PORTS), PORTS, ctx, all_projects)
    bay_uuid = await _bay_uuid(session, ctx, bay_ident)
    for column, value in ((PORTS.c.bay_uuid, bay_uuid), (PORTS.c.namespace, namespace),
                          (PORTS.c.device_id, device_id), (PORTS.c.network_id, network_id),
                          (PORTS.c.name, name), (PORTS.c.mac_address, mac_address)):
        if value is not None:
            stmt = stmt.where(column == value)
    rows = await _page(session, stmt, PORTS, limit, marker)
    return _listing(request, "ports", [port_view(r) for r in rows], limit)


@ports.get("/{port_id}", summary="Show a port")
async def show_port(port_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    row = (await session.execute(_show(ctx, select(PORTS), PORTS).where(PORTS.c.id == port_id))).first()
    if row is None:
        raise errors.NotFound(f"port {port_id} could not be found", field="port_id")
    return json_response({"port": port_view(row)})


routers = (networks, subnets, ports)
