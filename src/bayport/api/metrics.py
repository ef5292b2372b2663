"""HTTP metrics (one ASGI middleware) and the object counts ``/metrics`` reads at scrape time.

The middleware labels by route template (``/v1/bays/{ident}``), never by the raw path, so a
scan of random URLs cannot grow the series; a request no route matched is ``route="unmatched"``.
The object counts come from the database on each scrape: bays, pods and jobs change in
conductors and netd too, so no single process's counters could know them. Every API worker
exports the same counts (they are the database's); scrape one, or aggregate with ``max``.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bayport.db.jobs import JobRow
from bayport.db.models import BayRow
from bayport.db.network import IPAllocationRow, SubnetRow
from bayport.db.workloads import WorkloadRow
from bayport.kube.kinds import POD
from bayport.metrics import BAYS, HTTP_DURATION, HTTP_REQUESTS, IPAM_FREE, IPAM_USED, JOBS, PODS


class HTTPMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            code = str(status)
            HTTP_REQUESTS.labels(scope["method"], template, code).inc()
            HTTP_DURATION.labels(scope["method"], template, code).observe(
                time.perf_counter() - started)


async def refresh_object_counts(session: AsyncSession) -> None:
    """Set the gauges of objects (bays, pods, jobs, IPAM fill) from the database now."""
    bays = (await session.execute(select(BayRow.status, func.count()).group_by(BayRow.status))).all()
    pods = (await session.execute(
        select(WorkloadRow.status, func.count())
        .where(WorkloadRow.kind == POD.kind, WorkloadRow.deleted_at.is_(None))
        .group_by(WorkloadRow.status))).all()
    jobs = (await session.execute(select(JobRow.status, func.count()).group_by(JobRow.status))).all()
    used = (select(IPAllocationRow.subnet_id, func.count().label("used"))
            .group_by(IPAllocationRow.subnet_id).subquery())
    subnets = (await session.execute(
        select(SubnetRow.id, SubnetRow.cidr, SubnetRow.bay_uuid, SubnetRow.pool_size,
               func.coalesce(used.c.used, 0))
        .outerjoin(used, used.c.subnet_id == SubnetRow.id))).all()
    for gauge, rows in ((BAYS, bays), (PODS, pods), (JOBS, jobs)):
        gauge.clear()
        for status, count in rows:
            gauge.labels(status or "unknown").set(count)
    IPAM_USED.clear()
    IPAM_FREE.clear()
    for subnet_id, cidr, bay_uuid, pool_size, in_use in subnets:
        IPAM_USED.labels(subnet_id, cidr, bay_uuid).set(in_use)
        IPAM_FREE.labels(subnet_id, cidr, bay_uuid).set(max(0, int(pool_size) - int(in_use)))
