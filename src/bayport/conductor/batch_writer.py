"""One task that writes what watches observed, in batches.

Watch events arrive far faster than a database wants single-row transactions; a writer
collects the latest values, one task writes them together, a failed write is put back and
retried, and ``flush`` waits until everything handed over is stored. Subclasses say what
a batch is, how to take it, put it back and write it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)
B = TypeVar("B")
RETRY_SECONDS = 0.5


class BatchWriter(ABC, Generic[B]):
    what: ClassVar[str] = "observed states"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    def _has_pending(self) -> bool:
        """Something was handed over and not taken yet."""

    @abstractmethod
    def _take(self) -> B:
        """Everything pending, leaving nothing pending."""

    @abstractmethod
    def _put_back(self, batch: B) -> None:
        """A batch whose write failed; newer values handed over meanwhile win."""

    @abstractmethod
    async def _write_batch(self, batch: B) -> None:
        """Store the batch (one transaction)."""

    def _stored(self, batch: B) -> None:
        """The batch is in the database (subclasses remember what they wrote)."""

    def _size(self, batch: B) -> int:
        return 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self) -> None:
        """Wait until everything handed over so far is in the database."""
        while self._has_pending() or not self._idle.is_set():
            if self._task is None or self._task.done():
                return
            await self._idle.wait()
            if self._has_pending():
                await asyncio.sleep(0)

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = self._take()
            try:
                await self._write_batch(batch)
            except Exception:
                log.exception("writing %d %s failed; retrying", self._size(batch), self.what)
                self._put_back(batch)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()
                continue
            self._stored(batch)
            if not self._has_pending():
                self._idle.set()
