"""GET /metrics: this API process's Prometheus metrics plus the object counts (api.metrics).

Admin-only (401 without a valid token, 403 for other roles) unless ``metrics_public`` is set,
for a scraper that carries no token on a network the operator trusts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bayport import errors
from bayport.api.deps import StateDep, authenticate
from bayport.api.metrics import refresh_object_counts

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics (admin, unless BAYPORT_METRICS_PUBLIC)",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(state: StateDep,
                  x_auth_token: Annotated[str | None, Header()] = None) -> Response:
    if not state.settings.metrics_public:
        if not x_auth_token:
            raise errors.Unauthorized("missing X-Auth-Token header", field="X-Auth-Token")
        ctx = await authenticate(state, x_auth_token)
        if ctx is None:
            raise errors.Unauthorized("the token is not valid", field="X-Auth-Token")
        if not ctx.is_admin:
            raise errors.Forbidden("metrics need the admin role (or BAYPORT_METRICS_PUBLIC=1)")
    async with state.sessionmaker() as session:
        await refresh_object_counts(session)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
