"""GET / and GET /v1: API discovery in Magnum's shape, with the microversion range."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from bayport.api.microversion import MAX_VERSION, MIN_VERSION
from bayport.api.views import base_url

router = APIRouter(tags=["versions"])


def _v1(request: Request) -> dict[str, Any]:
    base = base_url(request)
    return {"id": "v1", "status": "CURRENT", "min_version": MIN_VERSION, "max_version": MAX_VERSION,
            "links": [{"href": f"{base}/v1/", "rel": "self"}],
            "media_types": [{"base": "application/json",
                             "type": "application/vnd.openstack.magnum.v1+json"}]}


@router.get("/", summary="API versions")
async def root(request: Request) -> dict[str, Any]:
    return {"name": "Bayport API", "description": "Bayport: bays, workloads, networks and jobs",
            "versions": [_v1(request)], "default_version": _v1(request)}


@router.get("/v1", summary="The v1 API and its resources")
@router.get("/v1/", include_in_schema=False)
async def v1(request: Request) -> dict[str, Any]:
    base = base_url(request)
    body = _v1(request)
    for res in ("baymodels", "bays", "clustertemplates", "clusters", "pods", "services", "rcs",
                "networks", "subnets", "ports", "tenants", "jobs", "tokens"):
        body[res] = [{"href": f"{base}/v1/{res}/", "rel": "self"}]
    return body
