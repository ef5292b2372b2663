"""A conductor process's lifetime: register, serve the bus, sweep, stop.

It consumes two topics: ``bayport.conductor`` (shared by every conductor, competing
consumers) and ``bayport.conductor.<id>`` (its own, for work on the bays whose
embedded clusters it hosts). Subsystems add RPC endpoints and bay hooks through
``add_endpoint`` before ``start``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bayport.conductor.bays import BayOperations
from bayport.conductor.endpoint import BayEndpoint
from bayport.conductor.recovery import Recovery
from bayport.conductor.registry import ConductorRegistry
from bayport.config import Settings
from bayport.drivers.registry import DriverRegistry
from bayport.kube.client import ClusterClients
from bayport.kube.informer import Informers
from bayport.objects.context import RequestContext
from bayport.rpc import RPCClient, RPCServer, Transport

log = logging.getLogger(__name__)
CONDUCTOR_TOPIC = "bayport.conductor"


def host_topic(conductor_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "-" for c in conductor_id)
    return f"{CONDUCTOR_TOPIC}.{safe}"


def composite_endpoint(parts: list[object]) -> object:
    """Several endpoint objects served as one (an RPC server serves one object's class).

    Builds a class whose public coroutine methods delegate to the parts' bound methods.
    """
    namespace: dict[str, Any] = {"RPC_API_VERSION": "1.0"}
    for part in parts:
        for name in dir(type(part)):
            attr = getattr(part, name)
            if name.startswith("_") or not inspect.iscoroutinefunction(attr):
                continue
            if name in namespace:
                raise RuntimeError(f"two conductor endpoints define {name!r}")

            def delegate(bound: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
                async def method(self: object, ctx: RequestContext, **args: Any) -> Any:
                    return await bound(ctx, **args)

                method.__doc__ = bound.__doc__
                return method

            namespace[name] = delegate(attr)
    return type("ConductorEndpoint", (), namespace)()


class ConductorService:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession],
                 transport: Transport, *, concurrency: int = 64, engine: AsyncEngine | None = None
                 ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.transport = transport
        self.concurrency = concurrency
        self.registry = ConductorRegistry(sessionmaker, settings.heartbeat_interval)
        self.drivers = DriverRegistry(settings)
        self.bays = BayOperations(sessionmaker, self.drivers, self.registry, self._forward)
        self.recovery = Recovery(sessionmaker, self.registry, self.bays)
        self._endpoints: list[object] = [BayEndpoint(self.bays)]
        # One client per bay for the subsystems that act as Bayport's admin (workloads, jobs),
        # and one informer per bay and resource that they and the pod-network controller share.
        self.clients = ClusterClients(sessionmaker)
        self.informers = Informers(self.clients)
        self._servers: list[RPCServer] = []
        # Subsystems (workload watches, the pod-network controller, job watches) run for the
        # service's lifetime: started once it serves, stopped (in reverse) before it stops.
        self.on_start: list[Callable[[], Awaitable[None]]] = []
        self.on_stop: list[Callable[[], Awaitable[None]]] = []

    @property
    def id(self) -> str:
        return self.registry.id

    def add_endpoint(self, endpoint: object) -> None:
        self._endpoints.append(endpoint)

    async def _forward(self, host: str, method: str, args: dict[str, Any]) -> None:
        log.info("forwarding %s to hosting conductor %s", method, host)
        client = RPCClient(self.transport, host_topic(host), timeout=self.settings.rpc_timeout)
        await client.cast(RequestContext.system(), method, **args)

    async def start(self) -> None:
        await self.transport.connect()
        await self.registry.register()
        endpoint = composite_endpoint(self._endpoints)
        for topic in (CONDUCTOR_TOPIC, host_topic(self.id)):
            server = RPCServer(self.transport, topic, endpoint, concurrency=self.concurrency)
            await server.start()
            self._servers.append(server)
        self.recovery.start()
        for hook in self.on_start:
            await hook()
        log.info("conductor %s started", self.id)

    async def stop(self) -> None:
        for hook in reversed(self.on_stop):
            try:
                await hook()
            except Exception:  # one subsystem failing to stop must not keep the rest running
                log.exception("conductor %s: a stop hook failed", self.id)
        await self.informers.close()
        await self.clients.close()
        await self.recovery.stop()
        for server in self._servers:
            await server.stop(grace=5.0)
        self._servers.clear()
        await self.drivers.close()
        await self.registry.unregister()
        if self.engine is not None:
            await self.engine.dispose()
        log.info("conductor %s stopped", self.id)
