"""Process assembly: which parts run in which process, started and stopped in order.

``serve`` is everything in one process on one in-memory bus (embedded mode);
``api`` and ``conductor`` are the production processes, ``netd`` the pod-network
controller on its own. Same components either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvicorn
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from bayport.api.app import build_state, create_app
from bayport.api.state import ApiState
from bayport.conductor import jobs as conductor_jobs
from bayport.conductor import workloads as conductor_workloads
from bayport.conductor.service import ConductorService
from bayport.config import Settings
from bayport.db.base import make_engine, make_sessionmaker
from bayport.db.migrate import upgrade
from bayport.db.models import BayRow, ConductorRow
from bayport.db.tokens import bootstrap_admin
from bayport.files import private_dir
from bayport.metrics import serve_metrics
from bayport.network import controller as pod_network
from bayport.rpc import Transport, get_transport

log = logging.getLogger("bayport")
Hook = Callable[[ConductorService], Awaitable[None]]
# Subsystems that add endpoints/hooks to a conductor (workloads, network, jobs) register here.
CONDUCTOR_PLUGINS: list[Hook] = []
CONDUCTOR_PLUGINS.append(conductor_workloads.install)
CONDUCTOR_PLUGINS.append(conductor_jobs.install)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run a server coroutine on uvloop when available (measurably faster for the API)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(main)
        return
    uvloop.run(main)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for noisy in ("aiormq", "aio_pika", "httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def upgrade_db(settings: Settings, *, bootstrap: bool = False) -> bool:
    """Schema to head; with ``bootstrap``, also the admin token. True if a token was made."""
    private_data_dir(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        await upgrade(engine)
        if not bootstrap:
            return False
        async with make_sessionmaker(engine)() as session:
            _, created = await bootstrap_admin(session, settings.admin_token_file)
        return created
    finally:
        await engine.dispose()


async def start_conductor(settings: Settings, transport: Transport, *, external_netd: bool = False
                          ) -> ConductorService:
    """A conductor with its plugins and, unless a ``bayport netd`` does it, the pod-network
    controller. Either way a controller writes port annotations, so embedded nodes wait for them."""
    engine = make_engine(settings.effective_database_url)
    service = ConductorService(settings, make_sessionmaker(engine), transport, engine=engine)
    for plugin in CONDUCTOR_PLUGINS:
        await plugin(service)
    from bayport.drivers.local import LocalDriver  # the embedded cluster: only servers load it

    local = service.drivers.get("local")
    if isinstance(local, LocalDriver):
        local.pod_network_enabled = True
    if not external_netd:
        await pod_network.install(service)
    try:
        await service.start()
    except BaseException:
        await engine.dispose()
        raise
    return service


class _ApiServer(uvicorn.Server):
    """uvicorn, telling open event streams to end when it begins to stop (it waits for them)."""

    def __init__(self, config: uvicorn.Config, state: ApiState) -> None:
        super().__init__(config)
        self.api_state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.api_state.events.closing.set()
        await super().shutdown(sockets)


def _uvicorn(state: ApiState, settings: Settings) -> uvicorn.Server:
    host, port = settings.host_port
    config = uvicorn.Config(create_app(state), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", http="httptools", loop="none",
                            timeout_graceful_shutdown=30)
    return _ApiServer(config, state)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def client_hint(settings: Settings) -> str:
    """The variables a fresh shell needs so that client commands find this server and its token
    (``Settings.client_url`` / ``client_token``): none when both are at their defaults."""
    default = Settings.model_construct()  # the defaults only: no environment, no config file
    hint = ""
    if settings.bind != default.bind:
        hint += f"BAYPORT_BIND={shlex.quote(settings.bind)} "
    if settings.data_dir != default.data_dir:
        hint += f"BAYPORT_DATA_DIR={shlex.quote(str(settings.data_dir))} "
    return hint


def private_data_dir(settings: Settings) -> None:
    """The data dir holds the admin token, the database, bays' CAs and tokens: owner only (0700),
    also when it already existed with a wider mode, and its ``bays`` directory likewise."""
    for path in (settings.data_dir, settings.data_dir / "bays"):
        private_dir(path)


def _hold_data_dir(settings: Settings) -> int:
    """An exclusive lock on the data dir for this process's life: one ``serve`` per data dir, so
    every conductor row found there belongs to a process that is gone."""
    private_data_dir(settings)
    fd = os.open(settings.data_dir / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"another bayport serve is using the data dir {settings.data_dir}") from None
    return fd


async def serve(settings: Settings, *, announce: Callable[[str], None] = print) -> None:
    """Embedded mode: database upgrade, admin token, conductor, API — one process."""
    _hold_data_dir(settings)
    await upgrade_db(settings)
    engine = make_engine(settings.effective_database_url)
    async with make_sessionmaker(engine)() as session:
        token, created = await bootstrap_admin(session, settings.admin_token_file)
        # The previous serve of this data dir is gone (we hold its lock): its bays are re-hosted
        # at once rather than after its heartbeat times out.
        await session.execute(delete(ConductorRow))
        await session.commit()
        bays = set((await session.execute(select(BayRow.uuid))).scalars())
    await engine.dispose()
    transport = get_transport(settings.transport_url)
    await transport.connect()
    conductor = await start_conductor(settings, transport)
    await _remove_orphans(conductor, bays)
    state = await build_state(settings, transport)
    server = _uvicorn(state, settings)
    host, port = settings.host_port
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        await conductor.stop()
        task.result()
        raise SystemExit(f"could not listen on {settings.bind}")
    # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's
    # full passes, which otherwise grow with every embedded cluster's objects.
    gc.freeze()
    announce(f"Bayport is listening on http://{host}:{port}")
    if created:
        announce(f"admin token (new; client commands read it from {settings.admin_token_file}): "
                 f"{token}")
    else:
        announce(f"admin token: in {settings.admin_token_file} (client commands read it from there)")
    announce(f"try, in another terminal: {client_hint(settings)}bayport baymodel-list")
    rejoining = asyncio.create_task(_rejoin_when_lost(conductor))
    try:
        await task
    finally:
        rejoining.cancel()
        await conductor.stop()
        await state.aclose()
        await transport.close()


async def _remove_orphans(conductor: ConductorService, bays: set[str]) -> None:
    """Bays deleted while no server ran (the row went, the files and containers stayed) are
    cleaned up now; a delete killed half-way is still a row, DELETE_IN_PROGRESS, which recovery
    resumes. Only ``serve`` may: it holds the data dir's lock, so no other process makes bays here,
    and its API does not serve yet."""
    from bayport.drivers.local import LocalDriver

    local = conductor.drivers.get("local")
    if isinstance(local, LocalDriver):
        try:
            removed = await local.remove_orphans(bays)
        except Exception:       # clean-up must never keep the server from starting
            log.exception("removing the state of deleted bays failed")
            return
        if removed:
            log.warning("removed the state of %d bays no longer in the database: %s", len(removed),
                        ", ".join(removed))


async def run_api(settings: Settings) -> None:
    transport = get_transport(settings.transport_url)
    await transport.connect()
    state = await build_state(settings, transport)
    server = _uvicorn(state, settings)
    log.info("API listening on %s (bus %s)", settings.bind, settings.transport_url.split("@")[-1])
    try:
        await server.serve()
    finally:
        await state.aclose()
        await transport.close()


async def _rejoin_when_lost(service: ConductorService) -> None:
    while True:
        await service.registry.lost.wait()
        await service.registry.rejoin()


async def run_conductor(settings: Settings, *, external_netd: bool = False) -> None:
    """Serve until a signal. A conductor whose lease was lost (registry.py) stops everything it
    was doing and starts again as a new conductor, as a supervisor's restart would."""
    serve_metrics(settings.metrics_port, settings.host_port[0])
    transport = get_transport(settings.transport_url)
    await transport.connect()
    signalled = asyncio.create_task(_wait_for_signal())
    try:
        while not signalled.done():
            service = await _start_when_possible(settings, transport, external_netd, signalled)
            if service is None:
                break
            lost = asyncio.create_task(service.registry.lost.wait())
            try:
                await asyncio.wait({signalled, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost.cancel()
                await service.stop()
            if not signalled.done():
                log.warning("conductor %s lost its lease (%s); starting again as a new conductor",
                            service.id, service.registry.lost_reason)
    finally:
        signalled.cancel()
        await transport.close()


async def _start_when_possible(settings: Settings, transport: Transport, external_netd: bool,
                               signalled: asyncio.Task[None]) -> ConductorService | None:
    """A started conductor, retrying while the database refuses; None if a signal came first."""
    delay = settings.heartbeat_interval
    while not signalled.done():
        try:
            return await start_conductor(settings, transport, external_netd=external_netd)
        except (OSError, SQLAlchemyError) as exc:
            log.warning("conductor cannot start yet (%s: %s); retrying in %.0f s",
                        type(exc).__name__, exc, delay)
            await asyncio.wait({signalled}, timeout=delay)
            delay = min(delay * 2, 30.0)
    return None


async def run_netd(settings: Settings) -> None:
    """The pod-network controller alone, for every bay on the bayport network (run one, with
    conductors started ``--external-netd``)."""
    serve_metrics(settings.metrics_port, settings.host_port[0])
    engine = make_engine(settings.effective_database_url)
    controller = pod_network.PodNetworkController(make_sessionmaker(engine), pod_network.EveryBay(),
                                                  interval=settings.heartbeat_interval)
    await controller.start()
    log.info("netd: pod-network controller running (database %s)",
             settings.effective_database_url.split("@")[-1])
    try:
        await _wait_for_signal()
    finally:
        await controller.stop()
        await engine.dispose()
