"""What every bay-bound conductor operation needs: where the bay's cluster lives, and how to
hand a request to the conductor that hosts it.

An embedded cluster lives in one conductor's process; a request for it that reaches another
conductor (competing consumers on the shared topic) is forwarded to the host's own topic
while the host lives. Workload and tenant-job operations build on this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport import errors
from bayport.conductor.locks import ObjectLocks
from bayport.conductor.registry import ConductorRegistry
from bayport.conductor.service import CONDUCTOR_TOPIC, host_topic
from bayport.conductor.watch_set import BayWatchSet
from bayport.config import Settings
from bayport.db.models import BayRow
from bayport.kube.client import ClusterClients
from bayport.objects.context import RequestContext
from bayport.rpc import RPCClient, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")


class BayBoundOperations:
    """Base of the operations that act inside a bay's cluster."""

    # The request field that named the bay, for the 404 when it is gone.
    bay_field: ClassVar[str] = "bay_uuid"

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession],
                 registry: ConductorRegistry, transport: Transport, watches: BayWatchSet[Any],
                 clients: ClusterClients) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.registry = registry
        self.transport = transport
        self.watches = watches
        self.clients = clients
        self.locks = ObjectLocks()

    async def hosted_elsewhere(self, bay_uuid: str) -> str | None:
        """The live conductor hosting ``bay_uuid``'s embedded cluster, when that is not this one.

        If its host died, the recovery sweep re-hosts the cluster within a few heartbeats; a
        request (often the dead host's own, redelivered) waits for that, up to half the RPC
        timeout, instead of failing against the dead address with a 503.
        """
        if self.watches.owns(bay_uuid):
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.rpc_timeout / 2
        orphaned = None
        while True:
            async with self.sessionmaker() as session:
                bay = await session.get(BayRow, bay_uuid, populate_existing=True)
                if bay is None:
                    raise errors.NotFound(f"bay {bay_uuid} could not be found", field=self.bay_field)
                if not bay.host or bay.host == self.registry.id:
                    if orphaned is not None:
                        log.info("bay %s re-hosted here after %s stopped", bay_uuid, orphaned)
                    return None
                if bay.host in await self.registry.live_ids(session):
                    return bay.host
            if orphaned is None:
                orphaned = bay.host
                log.info("bay %s: its host %s stopped; waiting for it to be re-hosted", bay_uuid,
                         bay.host)
            if loop.time() > deadline:
                return None  # the caller's cluster client says what is wrong
            await asyncio.sleep(min(self.registry.interval / 2, 0.5))

    async def retrying_cluster(self, bay_uuid: str, attempt: Callable[[Any], Awaitable[T]]) -> T:
        """``attempt(client)`` against the bay's cluster; on a TemporaryError (unreachable: the
        bay is being re-hosted, or was with new credentials) read the credentials again and
        retry, for up to half the RPC timeout. Other errors are the caller's to judge."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.rpc_timeout / 2
        refresh = False
        while True:
            client = await self.clients.get(bay_uuid, refresh=refresh)
            try:
                return await attempt(client)
            except errors.TemporaryError:
                if loop.time() > deadline:
                    raise
            refresh = True
            await asyncio.sleep(min(self.registry.interval / 2, 0.5))

    async def forward(self, host: str, ctx: RequestContext, method: str, **args: Any) -> Any:
        """Call ``method`` on the host's own topic. If the host dies meanwhile (its heartbeat
        stops), nobody will ever consume that topic: the request goes back on the shared
        topic, where whichever conductor takes it waits for the re-host and serves it. Should
        the host only have been slow, its late run of the request is harmless: creates find
        their own object, deletes their row gone."""
        log.info("%s forwarding %s to hosting conductor %s", ctx.request_id, method, host)
        client = RPCClient(self.transport, host_topic(host), timeout=self.settings.rpc_timeout)
        call = asyncio.ensure_future(client.call(ctx, method, **args))
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=self.registry.interval)
                if done:
                    return call.result()
                async with self.sessionmaker() as session:
                    if host in await self.registry.live_ids(session):
                        continue
                break
        finally:
            if not call.done():
                call.cancel()
        log.warning("%s hosting conductor %s stopped while serving %s; handing it back to %s",
                    ctx.request_id, host, method, CONDUCTOR_TOPIC)
        shared = RPCClient(self.transport, CONDUCTOR_TOPIC, timeout=self.settings.rpc_timeout)
        return await shared.call(ctx, method, **args)
