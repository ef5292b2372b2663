"""The FastAPI application: routers collected in one list, errors mapped in one place,
microversions and request ids handled by one ASGI middleware, body size and NUL characters
bounded by another (``limits``).

``build_state`` opens the database and the bus client the routes depend on; the
caller (``bayport api`` or ``bayport serve``) owns their lifetime.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from bayport import __version__
from bayport.api import errors as api_errors
from bayport.api.event_hub import EventHub
from bayport.api.limits import RequestLimitsMiddleware
from bayport.api.metrics import HTTPMetricsMiddleware
from bayport.api.microversion import MicroversionMiddleware
from bayport.api.routes import (
    baymodels,
    bays,
    events,
    jobs,
    metrics,
    networks,
    pods,
    quotas,
    rcs,
    seed_pods,
    services,
    tenants,
    tokens,
    versions,
)
from bayport.api.state import ApiState
from bayport.config import Settings
from bayport.db.base import make_engine, make_sessionmaker
from bayport.rpc import RPCClient, Transport, get_transport

CONDUCTOR_TOPIC = "bayport.conductor"


def routers() -> list[APIRouter]:
    return [
        versions.router,
        tokens.router,
        baymodels.build_router("baymodels"),
        baymodels.build_router("clustertemplates"),
        bays.build_router("bays"),
        bays.build_router("clusters"),
        pods.router, services.router, rcs.router,
        tenants.router, jobs.router, seed_pods.router, quotas.router, events.router,
        metrics.router,
        *networks.routers,
    ]


def create_app(state: ApiState, *, http_metrics: bool = True) -> FastAPI:
    """The app; ``http_metrics=False`` leaves out the request metrics (bench_events compares)."""
    app = FastAPI(title="Bayport", version=__version__,
                  description="Multi-tenant container infrastructure: bays (Kubernetes clusters) "
                              "from baymodels, workloads, pod networking and tenant jobs.")
    app.state.bayport = state
    api_errors.install(app)
    for router in routers():
        app.include_router(router)
    app.add_middleware(RequestLimitsMiddleware)  # inside: the request id is set by then
    app.add_middleware(MicroversionMiddleware)
    if http_metrics:
        app.add_middleware(HTTPMetricsMiddleware)  # outermost: it times everything
    return app


async def build_state(settings: Settings, transport: Transport | None = None) -> ApiState:
    """Open the database and the conductor client; pass ``transport`` to share one bus."""
    engine = make_engine(settings.effective_database_url)
    if transport is None:
        transport = get_transport(settings.transport_url)
        await transport.connect()
    client = RPCClient(transport, CONDUCTOR_TOPIC, timeout=settings.rpc_timeout)
    sessionmaker = make_sessionmaker(engine)
    return ApiState(settings=settings, engine=engine, sessionmaker=sessionmaker, conductor=client,
                    events=EventHub(sessionmaker, settings))
