"""An embedded cluster's objects in PostgreSQL, so that another conductor can re-host the bay.

Production runs conductors on several machines. With the SQLite journal (``journal.py``) a
bay's objects live on its host's disk, and a conductor that re-hosts the bay after the host
died starts from nothing. ``PgJournal`` keeps the same rows — one per object, with its
resourceVersion, and the cluster's last resourceVersion — in the deployment's PostgreSQL,
keyed by the cluster's uid, so whoever opens the journal next gets every object back and the
resourceVersions carry on.

Two hosts must never both write one cluster (a host presumed dead may still be running).
Opening the journal takes it over: it bumps the cluster's *epoch*, and every write is one
statement that checks the epoch under ``FOR SHARE`` and writes only if it is still the
opener's. The takeover's UPDATE waits for writes in flight, so after it returns the old host
can change nothing; its next write fails (``FencedError``, 503).

Durability point: one transaction per batch of writes (``group_commit``; while the database
is failing, one statement per write), before the answer. ``sync="normal"`` commits with
``synchronous_commit = off``: the write is in the server's WAL before the answer, so it
survives the conductor being killed, and a crash of the PostgreSQL server itself may lose its
last fraction of a second (never corrupting).
``sync="full"`` waits for the WAL flush as well. The engine owns these tables and creates
them itself (it depends on no Bayport code, so not on Bayport's migrations).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg

from bayport.cluster.journal import JournalError, Write

SCHEMA = """
create table if not exists cluster_objects (
    cluster text not null, plural text not null, namespace text not null, name text not null,
    rv bigint not null, body bytea not null,
    primary key (cluster, plural, namespace, name));
create table if not exists cluster_meta (
    cluster text not null, key text not null, value bigint not null,
    primary key (cluster, key));
"""
# The longest a write may wait for PostgreSQL (the statement, or the network under it).
STALL_MS = 5000
# Any constant: serialises the schema creation of concurrent first openers.
SCHEMA_LOCK = 0x42617970

TAKE_OVER = """
insert into cluster_meta (cluster, key, value) values (%(c)s, 'epoch', 1)
on conflict (cluster, key) do update set value = cluster_meta.value + 1
returning value
"""
PUT = """
with f as (select 1 from cluster_meta where cluster = %(c)s and key = 'epoch' and value = %(e)s
           for share),
     w as (insert into cluster_objects (cluster, plural, namespace, name, rv, body)
           select %(c)s, %(p)s, %(ns)s, %(n)s, %(rv)s, %(body)s from f
           on conflict (cluster, plural, namespace, name)
           do update set rv = excluded.rv, body = excluded.body returning 1),
     r as (insert into cluster_meta (cluster, key, value) select %(c)s, 'rv', %(rv)s from f
           on conflict (cluster, key) do update set value = excluded.value returning 1)
select (select count(*) from f), (select count(*) from w), (select count(*) from r)
"""
DROP = """
with f as (select 1 from cluster_meta where cluster = %(c)s and key = 'epoch' and value = %(e)s
           for share),
     d as (delete from cluster_objects where cluster = %(c)s and plural = %(p)s
           and namespace = %(ns)s and name = %(n)s and exists (select 1 from f) returning 1),
     r as (insert into cluster_meta (cluster, key, value) select %(c)s, 'rv', %(rv)s from f
           on conflict (cluster, key) do update set value = excluded.value returning 1)
select (select count(*) from f), (select count(*) from d), (select count(*) from r)
"""
FENCE = "select value from cluster_meta where cluster = %s and key = 'epoch' for share"
UPSERT = """
insert into cluster_objects (cluster, plural, namespace, name, rv, body)
values (%s, %s, %s, %s, %s, %s)
on conflict (cluster, plural, namespace, name) do update set rv = excluded.rv, body = excluded.body
"""
DELETE = "delete from cluster_objects where cluster = %s and plural = %s and namespace = %s and name = %s"
SET_RV = """
insert into cluster_meta (cluster, key, value) values (%s, 'rv', %s)
on conflict (cluster, key) do update set value = excluded.value
"""


class FencedError(JournalError):
    """Another host opened this cluster's journal since we did: we no longer serve it."""


class PgJournal:
    """The rows of one cluster (``uid``) in PostgreSQL; one connection, used from one loop."""

    def __init__(self, conninfo: str, uid: str, *, sync: str = "normal") -> None:
        self.conninfo = conninfo
        self.uid = uid
        self.sync = "on" if sync.lower() == "full" else "off"
        self.epoch = 0
        self._db: psycopg.Connection[Any] | None = None

    def __str__(self) -> str:
        return f"the cluster store of {self.uid} in PostgreSQL"

    def open(self) -> None:
        try:
            db = self._connect(connect_timeout=10)
            with db.transaction():
                db.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                db.execute(SCHEMA)
            row = db.execute(TAKE_OVER, {"c": self.uid}).fetchone()
        except psycopg.Error as exc:
            raise JournalError(f"{self} cannot be opened: {exc}") from exc
        assert row is not None
        self.epoch = int(row[0])
        self._db = db

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def destroy(self) -> None:
        """Forget the cluster (the bay is deleted): its objects and its epoch."""
        db = self._db or psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
        try:
            with db.transaction():
                db.execute("delete from cluster_objects where cluster = %s", (self.uid,))
                db.execute("delete from cluster_meta where cluster = %s", (self.uid,))
        except psycopg.Error as exc:
            raise JournalError(f"{self} could not be removed: {exc}") from exc
        finally:
            db.close()
            self._db = None

    def resource_version(self) -> int:
        row = self._query("select value from cluster_meta where cluster = %s and key = 'rv'",
                          (self.uid,)).fetchone()
        return int(row[0]) if row else 0

    def load(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(plural, object) of everything stored, oldest write first (owners before dependents)."""
        rows = self._query("select plural, body from cluster_objects where cluster = %s order by rv",
                           (self.uid,)).fetchall()
        for plural, body in rows:
            yield plural, orjson.loads(body)

    def record(self, plural: str, namespace: str, name: str, rv: int, obj: dict[str, Any] | None) -> None:
        """Make one write durable, if this host still holds the cluster (else FencedError)."""
        params = {"c": self.uid, "e": self.epoch, "p": plural, "ns": namespace, "n": name, "rv": rv}
        if obj is None:
            row = self._query(DROP, params).fetchone()
        else:
            row = self._query(PUT, {**params, "body": orjson.dumps(obj)}).fetchone()
        if row is None or not row[0]:
            raise FencedError(f"{self}: another host has taken this cluster over; this one no "
                              "longer serves it")

    def record_many(self, writes: Sequence[Write]) -> None:
        """Make a group of writes (one a key) durable in one transaction (``group_commit``). The
        epoch row is read ``FOR SHARE`` first and held to the commit, so a takeover waits for
        this batch or fences it. A dropped connection is made again once and the batch repeated
        (it is idempotent, like ``record``)."""
        try:
            self._write_batch(writes)
        except psycopg.OperationalError as exc:
            if self._db is None or not (self._db.broken or self._db.closed):
                raise JournalError(f"{self}: {exc}") from exc
            try:
                self._db.close()
                self._db = self._connect(connect_timeout=2)
                self._write_batch(writes)
            except psycopg.Error as again:
                raise JournalError(f"{self}: the database is unreachable ({again})") from exc
        except psycopg.Error as exc:
            raise JournalError(f"{self}: {exc}") from exc

    def _write_batch(self, writes: Sequence[Write]) -> None:
        if self._db is None:
            raise JournalError(f"{self} is not open")
        db, c = self._db, self.uid
        with db.transaction(), db.cursor() as cur:
            row = cur.execute(FENCE, (c,)).fetchone()
            if row is None or int(row[0]) != self.epoch:
                raise FencedError(f"{self}: another host has taken this cluster over; this one no "
                                  "longer serves it")
            kept = [(c, w.plural, w.namespace, w.name, w.rv, orjson.dumps(w.obj)) for w in writes
                    if w.obj is not None]
            gone = [(c, w.plural, w.namespace, w.name) for w in writes if w.obj is None]
            if kept:
                cur.executemany(UPSERT, kept)
            if gone:
                cur.executemany(DELETE, gone)
            cur.execute(SET_RV, (c, max(w.rv for w in writes)))

    def count(self) -> int:
        row = self._query("select count(*) from cluster_objects where cluster = %s",
                          (self.uid,)).fetchone()
        return int(row[0]) if row else 0

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside is one transaction: all are kept, or (killed midway) none."""
        if self._db is None:
            raise JournalError(f"{self} is not open")
        try:
            with self._db.transaction():
                yield
        except psycopg.Error as exc:
            raise JournalError(f"{self}: {exc}") from exc

    def _query(self, sql: str, params: Any) -> psycopg.Cursor[Any]:
        """Run one statement; a connection the database dropped (an outage, a restart) is made
        again once, with the same epoch, and the statement repeated: every write is an upsert
        or delete at a fixed resourceVersion, so running it twice changes nothing."""
        if self._db is None:
            raise JournalError(f"{self} is not open")
        try:
            return self._db.execute(sql, params)
        except psycopg.OperationalError as exc:
            if not self._db.broken and not self._db.closed:
                raise JournalError(f"{self}: {exc}") from exc
            try:
                self._db.close()
                self._db = self._connect(connect_timeout=2)
                return self._db.execute(sql, params)
            except psycopg.Error as again:
                raise JournalError(f"{self}: the database is unreachable ({again})") from exc
        except psycopg.Error as exc:
            raise JournalError(f"{self}: {exc}") from exc

    def _connect(self, *, connect_timeout: int) -> psycopg.Connection[Any]:
        # Bounded waits: a write runs on the cluster's event loop (the engine's commit path is
        # synchronous), so a database that stops answering must fail it, not hang it.
        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=connect_timeout,
                               tcp_user_timeout=STALL_MS, keepalives=1,
                               options=f"-c synchronous_commit={self.sync} "
                                       f"-c statement_timeout={STALL_MS}")
