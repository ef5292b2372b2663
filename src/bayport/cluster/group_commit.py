"""Group commit: an embedded cluster's writes made durable in batches, off the event loop.

Writing every change to the journal on the event loop before applying it (the first design)
made each write wait for its own transaction: a PostgreSQL round trip, or a SQLite commit,
during which the loop served nothing else. A pod create is four or five writes (the pod, its
binding, its status, its events), so the PostgreSQL journal held the engine to a third of its
in-memory rate.

Here ``Store._commit`` applies a change in memory at once and hands it to ``GroupCommit``; one
task takes everything queued since the last batch and writes it in one transaction on a worker
thread (the loop runs meanwhile, and the next batch forms behind it). A request of the
cluster's API is answered only once every write it made is durable (``http.app`` awaits
``durable``): what was acknowledged survives a kill. Batches are written in order, so what is on
disk is always a prefix of the history in memory.

Watchers hear of a change only once its batch is durable (``Store.publish``), as etcd's
watches do. A batch that cannot be written (the database is down, the disk is full, another
host has taken the cluster over) fails every write not yet durable: they are reverted in
memory (``Store.revert``), no watcher having heard of them, and their requests get the
journal's error. The group then stays *failed*: the store writes synchronously again, each
write durable before it is applied, until one succeeds, so that during an outage a refused
write changes nothing. A write that was applied but never acknowledged (the process was killed
within the batch's few milliseconds) is lost like any unacknowledged write.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
from collections.abc import Callable, Sequence

from bayport.cluster.journal import Journal, JournalError, Write
from bayport.cluster.watch import DELETED, Change

log = logging.getLogger(__name__)

# The highest resourceVersion written by the current task (an API request): what it waits for.
WRITTEN: contextvars.ContextVar[int] = contextvars.ContextVar("bayport_cluster_written", default=0)


class GroupCommit:
    """The durable tail of one store's history. Used from the store's event loop only; the
    journal is touched by one worker thread at a time, and by the loop only while failed."""

    def __init__(self, journal: Journal, publish: Callable[[Sequence[Change]], None],
                 revert: Callable[[Sequence[Change]], None]) -> None:
        self.journal = journal
        self.durable_rv = journal.resource_version()
        self._publish = publish
        self._revert = revert
        self._queue: list[Change] = []
        self._inflight: list[Change] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failure: JournalError | None = None
        self._lost: list[tuple[int, int, JournalError]] = []   # reverted rv ranges, newest last
        self.batches = 0                              # for the bench: writes per transaction

    @property
    def accepting(self) -> bool:
        """Whether writes may be applied before they are durable (else: write through)."""
        return self.failure is None and self._task is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-group-commit")

    async def stop(self) -> None:
        """Write what is queued, then stop (a graceful shutdown loses nothing applied)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._wake.set()
        while (self._queue or self._inflight) and self.failure is None and not task.done():
            await asyncio.sleep(0.005)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def submit(self, change: Change) -> None:
        """Queue an applied change for the next batch."""
        self._queue.append(change)
        self._wake.set()

    def written_through(self, rv: int) -> None:
        """A write made durable synchronously (while failed) succeeded: batches may resume."""
        self.durable_rv = rv
        if self.failure is not None:
            log.info("cluster store writable again at resourceVersion %d", rv)
        self.failure = None

    async def durable(self, rv: int) -> None:
        """Return once the write at ``rv`` is durable; JournalError if it was reverted."""
        for low, high, exc in self._lost:
            if low <= rv <= high:
                raise exc
        if rv <= self.durable_rv:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rv, next(self._order), future))
        await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            self._inflight, self._queue = self._queue, []
            try:
                await asyncio.to_thread(self.journal.record_many, _coalesce(self._inflight))
            except JournalError as exc:
                self._fail(exc)
                continue
            except Exception as exc:      # a bug must not leave requests waiting for ever
                log.exception("cluster store batch failed")
                self._fail(JournalError(f"cluster store: {exc}"))
                continue
            self.batches += 1
            done, self._inflight = self._inflight, []
            self.durable_rv = done[-1].rv
            self._publish(done)
            self._release(self.durable_rv, None)

    def _fail(self, exc: JournalError) -> None:
        lost = [*self._inflight, *self._queue]
        self._inflight, self._queue = [], []
        self.failure = exc
        if lost:
            self._lost = [*self._lost[-7:], (lost[0].rv, lost[-1].rv, exc)]
        log.error("cluster store: %d writes could not be stored and are reverted: %s", len(lost), exc)
        self._revert(lost)
        self._release(None, exc)

    def _release(self, upto: int | None, exc: JournalError | None) -> None:
        """Wake the waiters up to ``upto`` (all of them when failing)."""
        waiters = self._waiters
        while waiters and (upto is None or waiters[0][0] <= upto):
            _, _, future = heapq.heappop(waiters)
            if not future.done():
                if exc is None:
                    future.set_result(None)
                else:
                    future.set_exception(exc)


def _coalesce(changes: Sequence[Change]) -> list[Write]:
    """One write a key: its last state in the batch (all of them commit together)."""
    last: dict[tuple[str, str, str], Write] = {}
    for change in changes:
        name = change.obj["metadata"]["name"]
        key = (change.plural, change.namespace, name)
        last.pop(key, None)
        last[key] = Write(change.plural, change.namespace, name, change.rv,
                          None if change.type == DELETED else change.obj)
    return list(last.values())
