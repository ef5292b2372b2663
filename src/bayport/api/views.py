"""Row → response dicts, in both vocabularies (bays/baymodels and clusters/clustertemplates),
with Magnum's ``links`` and the ``next`` link of a paginated collection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request, Response

from bayport.db.models import BayModelRow, BayRow

BAYMODEL_FIELDS = (
    "uuid", "name", "project_id", "user_id", "coe", "driver", "image_id", "flavor_id",
    "master_flavor_id", "keypair_id", "external_network_id", "fixed_network", "fixed_subnet",
    "dns_nameserver", "docker_volume_size", "network_driver", "volume_driver", "labels", "public",
    "hidden", "tls_disabled", "master_lb_enabled", "created_at", "updated_at",
)
BAYMODEL_SUMMARY = ("uuid", "name", "coe", "driver", "public", "hidden")
BAY_FIELDS = (
    "uuid", "name", "project_id", "user_id", "node_count", "master_count", "discovery_url",
    "stack_id", "status", "status_reason", "api_address", "node_addresses", "master_addresses",
    "coe_version", "health_status", "labels", "created_at", "updated_at",
)
BAY_SUMMARY = ("uuid", "name", "node_count", "master_count", "status", "health_status",
               "stack_id", "labels")


def json_response(body: Any, status_code: int = 200) -> Response:
    """orjson straight to bytes (datetimes included): the hot paths skip re-validation."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def base_url(request: Request) -> str:
    public: str | None = request.app.state.bayport.settings.public_url
    return (public or str(request.base_url)).rstrip("/")


def links(request: Request, plural: str, uuid: str) -> list[dict[str, str]]:
    base = base_url(request)
    return [{"href": f"{base}/v1/{plural}/{uuid}", "rel": "self"},
            {"href": f"{base}/{plural}/{uuid}", "rel": "bookmark"}]


def baymodel_view(request: Request, row: BayModelRow | Any, plural: str, *, detail: bool = True
                  ) -> dict[str, Any]:
    fields = BAYMODEL_FIELDS if detail else BAYMODEL_SUMMARY
    out = {f: getattr(row, f) for f in fields}
    out["links"] = links(request, plural, row.uuid)
    return out


def bay_view(request: Request, row: BayRow | Any, plural: str, *, detail: bool = True) -> dict[str, Any]:
    fields = BAY_FIELDS if detail else BAY_SUMMARY
    out = {f: getattr(row, f) for f in fields}
    if plural == "bays":
        out["baymodel_id"] = row.baymodel_id
        out["bay_create_timeout"] = row.create_timeout
    else:
        out["cluster_template_id"] = row.baymodel_id
        out["create_timeout"] = row.create_timeout
    out["links"] = links(request, plural, row.uuid)
    return out


def next_link(request: Request, plural: str, items: list[Any], limit: int | None,
              extra: dict[str, Any]) -> str | None:
    """Magnum's ``next``: present when a full page was returned."""
    if not limit or len(items) < limit:
        return None
    params = {k: v for k, v in extra.items() if v not in (None, False)}
    params.update({"limit": limit, "marker": items[-1].uuid})
    path = request.url.path
    return f"{base_url(request)}{path}?{urlencode(params)}"
