"""Per-object locks: one asyncio lock per object id in this process, and a claim in the
database so that two conductors never drive the same row at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ObjectLocks:
    """In-process serialisation: events and operations on one object run in order."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]
