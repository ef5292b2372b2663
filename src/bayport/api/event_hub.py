"""One reader of the event log per API process, shared by every ``GET /v1/events`` stream.

The hub follows ``events`` (db.events) from the newest id at start and keeps what it read in a
bounded buffer, so N subscribers cost one query per batch of changes, not N. It is woken by
PostgreSQL's ``NOTIFY bayport_events`` (sent at commit by the log's trigger, so conductors and
other API workers, in other processes, reach every worker's streams), on SQLite by
``sqlite_inline``'s commit hook (embedded mode: one process), and by a slow poll either way, so
a lost notification or a listener reconnecting delays an event, never loses it. A subscriber
behind the buffer reads from the database directly, and one behind retention is told to reset.
The hub also prunes the log (any worker may: pruning is idempotent).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport.config import Settings
from bayport.db import sqlite_inline
from bayport.db.events import CHANNEL, Event, Scope, horizon, last_id, prune, read_after

log = logging.getLogger(__name__)

BUFFER = 20_000           # events kept in memory; a subscriber further behind reads the database
BATCH = 1000
# The poll that backs up the wake-ups: short where nothing else wakes the hub.
POLL_LISTENING = 5.0
POLL_UNWOKEN = 0.5
PRUNE_EVERY = 60.0
LISTEN_PING = 30.0        # a LISTEN connection silent this long is checked (half-open TCP)


@dataclass(frozen=True)
class Reset:
    """The cursor is older than retention (or from another database): resume from ``cursor``."""

    cursor: int
    reason: str


class EventHub:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        url = make_url(settings.effective_database_url)
        self.conninfo = (url.set(drivername="postgresql").render_as_string(hide_password=False)
                         if url.drivername.startswith("postgresql") else None)
        self.latest = 0
        self.floor = 0            # the buffer holds every event with floor < id <= latest
        self.buffer: list[Event] = []
        self.listening = False
        self._tick = asyncio.Event()
        self._wake = asyncio.Event()
        # Set when the server begins to stop: every stream then ends with ``event: close``.
        self.closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Start following the log (idempotent: the first stream starts the hub)."""
        if self._started is None:
            self._started = asyncio.Lock()
        async with self._started:
            if self._tasks:
                return
            self._loop = asyncio.get_running_loop()
            async with self.sessionmaker() as session:
                self.latest = self.floor = await last_id(session)
            sqlite_inline.COMMIT_LISTENERS.append(self._poke)
            self._tasks = [asyncio.create_task(self._follow(), name="events-follow"),
                           asyncio.create_task(self._prune_forever(), name="events-prune")]
            if self.conninfo is not None:
                self._tasks.append(asyncio.create_task(self._listen(), name="events-listen"))

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            sqlite_inline.COMMIT_LISTENERS.remove(self._poke)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def changed(self) -> asyncio.Event:
        """Set once the hub has read events beyond what it had when this was called."""
        return self._tick

    async def current(self) -> int:
        """The newest committed id now (a new stream without a cursor starts here)."""
        async with self.sessionmaker() as session:
            return await last_id(session)

    async def check(self, cursor: int) -> Reset | None:
        """Whether a client's cursor can be resumed from."""
        async with self.sessionmaker() as session:
            newest = await last_id(session)
            pruned = await horizon(session)
        if cursor < pruned:
            return Reset(newest, f"events up to {pruned} are no longer kept")
        if cursor > newest:
            return Reset(newest, f"event {cursor} is not from this Bayport's log")
        return None

    async def read(self, cursor: int, scope: Scope) -> tuple[list[Event], int] | Reset:
        """Events after ``cursor`` that ``scope`` admits, and the cursor to read from next."""
        if cursor >= self.floor and self._tasks:
            start = bisect.bisect_right(self.buffer, cursor, key=lambda e: e.id)
            return [e for e in self.buffer[start:] if scope.admits(e)], max(cursor, self.latest)
        reached = self.latest
        async with self.sessionmaker() as session:
            if cursor < await horizon(session):
                return Reset(await last_id(session), "the stream fell behind the kept events")
            events = await read_after(session, cursor, scope, limit=BATCH)
        if len(events) == BATCH:
            return events, events[-1].id
        return events, max(cursor, reached, events[-1].id if events else 0)

    # -- the hub's own tasks ---------------------------------------------------------------

    def _poke(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._catch_up()
            except Exception as exc:      # the database is away: try again at the next poll
                log.warning("reading the event log failed: %s", exc)
            poll = POLL_LISTENING if self.listening else POLL_UNWOKEN
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # arrives as the event is set, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()

    async def _catch_up(self) -> None:
        while True:
            async with self.sessionmaker() as session:
                events = await read_after(session, self.latest, limit=BATCH)
            if not events:
                return
            self.buffer.extend(events)
            if len(self.buffer) > 2 * BUFFER:
                self.floor = self.buffer[-BUFFER - 1].id
                del self.buffer[:-BUFFER]
            self.latest = events[-1].id
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()
            if len(events) < BATCH:
                return

    async def _listen(self) -> None:
        assert self.conninfo is not None
        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=10, keepalives=1)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    delay = 0.5
                    self._wake.set()      # whatever committed while nobody listened
                    while True:
                        async for _ in conn.notifies(timeout=LISTEN_PING):
                            self._wake.set()
                        await conn.execute("SELECT 1")
            except (psycopg.Error, OSError) as exc:
                log.warning("listening for events failed (%s); polling until it works again", exc)
            finally:
                self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _prune_forever(self) -> None:
        keep = timedelta(hours=self.settings.events_retention_hours)
        while True:
            try:
                async with self.sessionmaker() as session:
                    await prune(session, keep=keep, keep_rows=self.settings.events_retention_rows)
            except Exception as exc:
                log.warning("pruning the event log failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY)
