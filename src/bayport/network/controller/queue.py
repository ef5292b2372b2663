"""Per-pod ordering: one FIFO of actions per key (a pod uid), drained by one task per busy key.

Events of one pod are handled in order and never two at once (kopf keeps one queue per
object uid the same way); different pods run side by side. Only the newest pending
``ensure`` of a pod matters, so a newer one replaces it, and a ``release`` drops the
pending ones ahead of it: a deleted pod needs no port. ``bay.BayNetwork`` submits here
from its watches; the actions themselves bound their database and HTTP concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

log = logging.getLogger(__name__)
Action = Callable[[], Awaitable[None]]


class Kind(Enum):
    ENSURE = "ensure"
    RELEASE = "release"
    OTHER = "other"


@dataclass(slots=True)
class _Item:
    kind: Kind
    run: Action
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def settle(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)


class PerKeyQueue:
    """Ordered actions per key; ``idle()`` waits until nothing is pending or running."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pending: dict[str, deque[_Item]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def submit(self, key: str, kind: Kind, run: Action) -> asyncio.Future[None]:
        """Queue ``run`` behind the key's earlier actions; the future resolves once it ran
        (or was superseded)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            waiter.set_result(None)
            return waiter
        pending = self._pending.setdefault(key, deque())
        if kind is Kind.RELEASE:
            kept = deque(i for i in pending if i.kind is not Kind.ENSURE)
            for dropped in pending:
                if dropped.kind is Kind.ENSURE:
                    dropped.settle()
            pending.clear()
            pending.extend(kept)
        if kind is Kind.ENSURE and pending and pending[-1].kind is Kind.ENSURE:
            pending[-1].run = run
            pending[-1].waiters.append(waiter)
        else:
            pending.append(_Item(kind, run, [waiter]))
        if key not in self._tasks:
            self._idle.clear()
            self._tasks[key] = asyncio.create_task(self._drain(key), name=f"{self.name}-{key}")
        return waiter

    async def run(self, key: str, kind: Kind, run: Action) -> None:
        """Submit and wait until it ran."""
        await self.submit(key, kind, run)

    async def _drain(self, key: str) -> None:
        pending = self._pending[key]
        try:
            while pending:
                item = pending.popleft()
                try:
                    await item.run()
                except asyncio.CancelledError:
                    item.settle()
                    raise
                except Exception:  # one pod's failure must not stop the others' handling
                    log.exception("%s: %s of %s failed", self.name, item.kind.value, key)
                item.settle()
        finally:
            for item in pending:
                item.settle()
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
                self._pending.pop(key, None)
            if not self._tasks:
                self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        """Cancel every running and pending action (a controller that stops or dies)."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._pending.clear()
        self._idle.set()
