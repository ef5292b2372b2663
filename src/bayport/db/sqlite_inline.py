"""SQLite for the embedded mode, without a thread per connection.

aiosqlite runs every statement on a worker thread; for Bayport's small indexed
queries the two thread switches per call cost more than the query (profiled: 35 %
of a GET's CPU was aiosqlite's worker loop). Here the sqlite3 calls run on the
event loop itself — each is tens of microseconds — and the one thing that could
block, waiting for another connection's write lock, never blocks: the busy
timeout is 0 and a locked database is retried after ``asyncio.sleep``, so the
connection holding the lock keeps running. SQLAlchemy's aiosqlite dialect drives
these objects through its ``async_creator`` hook; nothing else changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
# Called (on the committing thread) after a commit that changed rows: the embedded mode's
# in-process wake-up for event readers (db.events), where PostgreSQL has LISTEN/NOTIFY.
COMMIT_LISTENERS: list[Callable[[], None]] = []
# How long a statement may wait for another connection's write lock before failing,
# as busy_timeout would; SQLite's default in this project elsewhere is 5 s.
LOCK_WAIT_SECONDS = 10.0


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


async def _retry(fn: Callable[[], T]) -> T:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.0005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


class InlineCursor:
    """The slice of aiosqlite's Cursor that SQLAlchemy's adapter uses."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await _retry(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        rows = list(parameters)
        await _retry(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """The slice of aiosqlite's Connection that SQLAlchemy's adapter uses."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = conn
        # The adapter checks ``_connection`` for "still open".
        self._connection: sqlite3.Connection | None = conn
        self._changes = conn.total_changes

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("no active connection")
        return self._conn

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._open().cursor())

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    async def commit(self) -> None:
        conn = self._open()
        await _retry(conn.commit)
        if conn.total_changes != self._changes:
            self._changes = conn.total_changes
            for listener in COMMIT_LISTENERS:
                listener()

    async def rollback(self) -> None:
        self._open().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._connection = None


def make_private(path: str) -> None:
    """Create the database file 0600 (or make it so) before SQLite opens it: it holds the bays'
    cluster credentials, and SQLite gives its -wal and -shm files the database file's mode."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


def creator_for(path: str) -> Callable[[], Any]:
    """An ``async_creator`` for create_async_engine opening ``path`` inline."""

    async def create() -> InlineConnection:
        make_private(path)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=0)
        return InlineConnection(conn)

    return create
