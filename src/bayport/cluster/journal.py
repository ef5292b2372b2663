"""Durable objects of one embedded cluster: every committed write, in SQLite, before it is answered.

``Store`` stays the in-memory database the API and controllers read (its speed is the engine's);
``ObjectJournal`` is its durable copy. Writes reach it in batches (``group_commit``): a request
of the cluster's API is answered only once its writes are in the journal, and a batch that
cannot be stored is reverted in memory and refused (507 when the disk is full). At start
``EmbeddedCluster`` reads the journal back (``load``) instead of seeding a new cluster: same
objects, same uids, and the resourceVersion carries on from where it stopped, so clients'
watches resume or get a clean 410 (the replay history is not kept: anything older than the
restart is "too old").

Durability point: one SQLite transaction per batch, WAL mode, before the answer. With
``sync="normal"`` (the default) a commit reaches the OS before the answer, so it survives the
process being killed (SIGKILL, OOM) but a power loss may drop the last moments of writes (never
corrupting the file). ``sync="full"`` fsyncs every commit as well
(``BAYPORT_CLUSTER_SYNC=full``): ~4x the cost.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

from bayport.files import private_sqlite

SCHEMA = """
create table if not exists objects (
    plural text not null, namespace text not null, name text not null,
    rv integer not null, body blob not null,
    primary key (plural, namespace, name)) without rowid;
create table if not exists meta (key text primary key, value text not null) without rowid;
"""
SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}


class JournalError(Exception):
    """The journal cannot be read or written (corrupt file, disk full, permissions)."""


class Write(NamedTuple):
    """One object's new state for ``record_many``: stored at ``rv``, or gone (``obj`` None)."""
    plural: str
    namespace: str
    name: str
    rv: int
    obj: dict[str, Any] | None


class Journal(Protocol):
    """What ``Store`` and ``EmbeddedCluster`` need of a durable copy: SQLite here, PostgreSQL in
    ``journal_pg`` (production, so that another conductor can re-host the bay)."""

    @property
    def is_open(self) -> bool: ...
    def open(self) -> None: ...
    def close(self) -> None: ...
    def destroy(self) -> None: ...
    def resource_version(self) -> int: ...
    def load(self) -> Iterator[tuple[str, dict[str, Any]]]: ...
    def record(self, plural: str, namespace: str, name: str, rv: int,
               obj: dict[str, Any] | None) -> None: ...
    def record_many(self, writes: Sequence[Write]) -> None: ...
    def count(self) -> int: ...
    def batch(self) -> contextlib.AbstractContextManager[None]: ...


class ObjectJournal:
    """The SQLite file under a cluster's state directory; one connection, used from one loop."""

    def __init__(self, path: Path, *, sync: str = "normal") -> None:
        self.path = path
        self.sync = SYNC_MODES.get(sync.lower(), "NORMAL")
        self._db: sqlite3.Connection | None = None
        self._batched = False

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Private before SQLite opens it: it gives its -wal and -shm files the database's mode.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.path.chmod(0o600)
        try:
            private_sqlite(self.path)  # before SQLite makes the WAL, which copies the file's mode
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("pragma journal_mode=wal")
            db.execute(f"pragma synchronous={self.sync}")
            db.executescript(SCHEMA)
            db.execute("select count(*) from objects").fetchone()
        except sqlite3.Error as exc:
            raise JournalError(f"cluster store {self.path} is unusable: {exc}") from exc
        self._db = db

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def destroy(self) -> None:
        """Remove the file (the bay is deleted)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).unlink()

    def resource_version(self) -> int:
        row = self._conn.execute("select value from meta where key = 'rv'").fetchone()
        return int(row[0]) if row else 0

    def load(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(plural, object) of everything stored, oldest write first (owners before dependents)."""
        try:
            rows = self._conn.execute("select plural, body from objects order by rv").fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"cluster store {self.path} is unreadable: {exc}") from exc
        for plural, body in rows:
            yield plural, orjson.loads(body)

    def record(self, plural: str, namespace: str, name: str, rv: int, obj: dict[str, Any] | None) -> None:
        """Make one write durable: ``obj`` stored at ``rv``, or the object gone (``obj`` None)."""
        db = self._conn
        try:
            with contextlib.nullcontext() if self._batched else self._transaction(db):
                if obj is None:
                    db.execute("delete from objects where plural = ? and namespace = ? and name = ?",
                               (plural, namespace, name))
                else:
                    db.execute("insert or replace into objects values (?, ?, ?, ?, ?)",
                               (plural, namespace, name, rv, orjson.dumps(obj)))
                db.execute("insert or replace into meta values ('rv', ?)", (str(rv),))
        except sqlite3.Error as exc:
            raise JournalError(f"cluster store {self.path}: {exc}") from exc

    def record_many(self, writes: Sequence[Write]) -> None:
        """Make a group of writes (one a key) durable in one transaction (``group_commit``)."""
        db = self._conn
        gone = [(w.plural, w.namespace, w.name) for w in writes if w.obj is None]
        kept = [(w.plural, w.namespace, w.name, w.rv, orjson.dumps(w.obj)) for w in writes
                if w.obj is not None]
        try:
            with self._transaction(db):
                if gone:
                    db.executemany("delete from objects where plural = ? and namespace = ? and name = ?",
                                   gone)
                if kept:
                    db.executemany("insert or replace into objects values (?, ?, ?, ?, ?)", kept)
                db.execute("insert or replace into meta values ('rv', ?)",
                           (str(max(w.rv for w in writes)),))
        except sqlite3.Error as exc:
            raise JournalError(f"cluster store {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside is one transaction: all are kept, or (killed midway) none. A new
        cluster is seeded this way, so a restart never finds half a cluster."""
        try:
            with self._transaction(self._conn):
                self._batched = True
                try:
                    yield
                finally:
                    self._batched = False
        except sqlite3.Error as exc:
            raise JournalError(f"cluster store {self.path}: {exc}") from exc

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("begin immediate")
        try:
            yield
        except BaseException:
            db.execute("rollback")
            raise
        db.execute("commit")

    def count(self) -> int:
        return int(self._conn.execute("select count(*) from objects").fetchone()[0])

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalError(f"cluster store {self.path} is not open")
        return self._db
