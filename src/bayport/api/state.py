"""What the API process holds for its lifetime: settings, database, bus client, event hub,
token cache."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bayport.api.event_hub import EventHub
from bayport.config import Settings
from bayport.objects.context import RequestContext
from bayport.rpc import RPCClient

# A verified token is trusted for this long without another database read; a
# revoked token therefore stops working within this bound.
TOKEN_CACHE_SECONDS = 30.0


@dataclass
class TokenCache:
    entries: dict[str, tuple[float, RequestContext]] = field(default_factory=dict)

    def get(self, digest: str) -> RequestContext | None:
        hit = self.entries.get(digest)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, digest: str, ctx: RequestContext) -> None:
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[digest] = (time.monotonic() + TOKEN_CACHE_SECONDS, ctx)


@dataclass
class ApiState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    conductor: RPCClient
    events: EventHub
    tokens: TokenCache = field(default_factory=TokenCache)

    async def aclose(self) -> None:
        """Stop the event hub and close the database (the bus belongs to the caller)."""
        await self.events.stop()
        await self.engine.dispose()
