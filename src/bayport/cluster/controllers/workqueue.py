"""A deduplicating work queue with one worker: the heart of every level-based controller.

Informer handlers ``add`` object keys; the worker task calls the controller's synchronous
``reconcile(key)`` for each dirty key, one at a time, so one object's work is never interleaved
with itself and many events for the same key collapse into one pass. A reconcile that raises is
retried with exponential back-off (``add_after``); a 409 Conflict is retried at once. Reconciles
only call the synchronous store, so they never block the loop; the worker yields between batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bayport.cluster.errors import ApiError

log = logging.getLogger(__name__)

Reconcile = Callable[[str], None]

_BATCH = 64                  # reconciles between yields to the event loop
_RETRY_BASE = 0.005
_RETRY_MAX = 10.0


class WorkQueue:
    def __init__(self, name: str, reconcile: Reconcile) -> None:
        self.name = name
        self._reconcile = reconcile
        self._dirty: dict[str, None] = {}
        self._wakeup = asyncio.Event()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"workqueue-{self.name}")

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def add(self, key: str) -> None:
        self._dirty[key] = None
        self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        """Enqueue ``key`` after ``delay`` seconds (an earlier pending timer wins)."""
        if delay <= 0:
            self.add(key)
            return
        timer = self._timers.get(key)
        loop = asyncio.get_running_loop()
        if timer is not None:
            if timer.when() <= loop.time() + delay:
                return
            timer.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def forget(self, key: str) -> None:
        """Drop pending timers and failure history of a key whose object is gone."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._dirty)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            done = 0
            while self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                self._process(key)
                done += 1
                if done % _BATCH == 0:
                    await asyncio.sleep(0)

    def _process(self, key: str) -> None:
        try:
            self._reconcile(key)
        except ApiError as exc:
            if exc.code == 409 and self._failures.get(key, 0) < 3:
                self._retry(key, 0.0)
            else:
                log.warning("%s: reconcile %s failed: %s", self.name, key, exc.message)
                self._retry(key, None)
        except Exception:
            log.exception("%s: reconcile %s failed", self.name, key)
            self._retry(key, None)
        else:
            self._failures.pop(key, None)

    def _retry(self, key: str, delay: float | None) -> None:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if delay is None:
            delay = min(_RETRY_BASE * 2 ** (count - 1), _RETRY_MAX)
        self.add_after(key, delay)
