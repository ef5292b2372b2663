"""The event log: one append-only ``events`` row per change of a Bayport object, written by
database triggers in the transaction that changes the row.

Why triggers: rows change in many places (API routes, conductor handlers, the watch's batched
executemany, IPAM's Core statements, ON DELETE CASCADE). A trigger is the one choke point every
one of them passes, in every process, and it commits or rolls back with the change itself, so
an event is never announced for a change that did not happen nor lost for one that did. What a
table contributes is declared once (``EventSource``); migration 0009 turns a frozen copy of the
declarations into triggers for SQLite and PostgreSQL.

Why ids are commit-ordered: the stream resumes from one integer (``Last-Event-ID``), which is
only sound if an id, once seen, has no smaller id still to commit. SQLite has one writer at a
time, so its AUTOINCREMENT is that already. On PostgreSQL a row trigger inserts the event with a
placeholder (negative) id, and a deferred constraint trigger, run at COMMIT, takes one advisory
lock, gives it the next id and sends ``NOTIFY bayport_events``; the lock is held only for the
commit itself, so ids are handed out in commit order. Readers (``api.event_hub``) wake on the
NOTIFY, or on SQLite on ``sqlite_inline``'s commit hook, and read ``id > cursor``.

Retention is bounded (``prune``); ``event_horizon`` remembers the highest id pruned, so a reader
whose cursor is older learns that it missed events (the stream's ``reset``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text, func, select, update
from sqlalchemy import delete as sa_delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bayport.db.base import NAME_LEN, UUID_LEN, Base, utcnow

CHANNEL = "bayport_events"
# Any constant (ASCII "Bpev"): serialises id assignment at commit (see the module docstring).
SEQUENCE_LOCK = 0x42706576
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class EventRow(Base):
    __tablename__ = "events"
    # AUTOINCREMENT: an id is never reused, also after pruning has emptied the table.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column()
    kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    uuid: Mapped[str] = mapped_column(String(NAME_LEN))
    project_id: Mapped[str] = mapped_column(String(64))
    bay_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN), default=None)
    name: Mapped[str | None] = mapped_column(String(NAME_LEN), default=None)
    status: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)


class EventHorizonRow(Base):
    """One row: every event with ``id <= pruned_through`` has been deleted by retention."""

    __tablename__ = "event_horizon"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True)
class EventSource:
    """What one table contributes to the log: which column is which, and which columns'
    change is worth an event (a lease renewal or a cursor move is not)."""

    table: str
    kind: str               # the event kind, or "=column" to take it from the row
    key: str
    project: str
    bay: str | None
    name: str | None
    status: str | None
    reason: str | None
    watched: tuple[str, ...]
    gone: str | None = None  # a soft-delete timestamp: set means the object is gone
    # With kind "=column": the column's values and the event kinds they stand for.
    kind_names: tuple[tuple[str, str], ...] = ()

    def columns(self) -> tuple[str | None, ...]:
        return (self.kind, self.key, self.project, self.bay, self.name, self.status, self.reason,
                self.gone)

    def kind_map_json(self) -> str:
        return "{" + ", ".join(f'"{k}": "{v}"' for k, v in self.kind_names) + "}"


EVENT_COLUMNS = "at, kind, action, uuid, project_id, bay_uuid, name, status, reason"


@dataclass(frozen=True)
class Event:
    """One event as readers hold it (the hub's buffer, the SSE stream)."""

    id: int
    at: datetime
    kind: str
    action: str
    uuid: str
    project_id: str
    bay_uuid: str | None
    name: str | None
    status: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "kind": self.kind, "action": self.action,
                "uuid": self.uuid, "project_id": self.project_id, "bay_uuid": self.bay_uuid,
                "name": self.name, "status": self.status, "reason": self.reason}


def _event(row: Any) -> Event:
    return Event(id=row.id, at=row.at, kind=row.kind, action=row.action, uuid=row.uuid,
                 project_id=row.project_id, bay_uuid=row.bay_uuid, name=row.name,
                 status=row.status, reason=row.reason)


# -- triggers (used by migrations, with the migration's own frozen list of sources) ----------

def _sqlite_values(src: EventSource, ref: str, action: str) -> str:
    def col(name: str | None) -> str:
        return f"{ref}.{name}" if name else "NULL"
    kind = f"'{src.kind}'"
    if src.kind.startswith("="):
        cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in src.kind_names)
        kind = f"CASE {col(src.kind[1:])} {cases} ELSE {col(src.kind[1:])} END"
    return (f"strftime('%Y-%m-%d %H:%M:%f000', 'now'), {kind}, {action}, {col(src.key)}, "
            f"{col(src.project)}, {col(src.bay)}, {col(src.name)}, {col(src.status)}, "
            f"{col(src.reason)}")


def sqlite_trigger_ddl(src: EventSource) -> list[str]:
    t = src.table
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in src.watched)
    update_action = (f"CASE WHEN NEW.{src.gone} IS NOT NULL AND OLD.{src.gone} IS NULL "
                     "THEN 'deleted' ELSE 'updated' END") if src.gone else "'updated'"
    insert = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES"
    return [
        f"CREATE TRIGGER {t}_event_insert AFTER INSERT ON {t} FOR EACH ROW BEGIN "
        f"{insert} ({_sqlite_values(src, 'NEW', repr('created'))}); END",
        f"CREATE TRIGGER {t}_event_update AFTER UPDATE ON {t} FOR EACH ROW WHEN {changed} BEGIN "
        f"{insert} ({_sqlite_values(src, 'NEW', update_action)}); END",
        f"CREATE TRIGGER {t}_event_delete AFTER DELETE ON {t} FOR EACH ROW BEGIN "
        f"{insert} ({_sqlite_values(src, 'OLD', repr('deleted'))}); END",
    ]


PG_FUNCTIONS = [
    # events_id_seq is the id column's own (BIGSERIAL): only the commit-time trigger draws on it.
    "CREATE SEQUENCE events_pending_seq",
    # TG_ARGV: kind (or '=column'), key, project, bay, name, status, reason, gone ('' = none),
    # and a JSON object naming the event kind of each value of the kind column.
    """CREATE FUNCTION bayport_record_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r jsonb; act text;
BEGIN
  IF TG_OP = 'DELETE' THEN
    r := to_jsonb(OLD); act := 'deleted';
  ELSE
    r := to_jsonb(NEW);
    act := CASE TG_OP WHEN 'INSERT' THEN 'created' ELSE 'updated' END;
    IF TG_OP = 'UPDATE' AND TG_ARGV[7] <> '' AND r->>TG_ARGV[7] IS NOT NULL
       AND to_jsonb(OLD)->>TG_ARGV[7] IS NULL THEN
      act := 'deleted';
    END IF;
  END IF;
  INSERT INTO events (id, at, kind, action, uuid, project_id, bay_uuid, name, status, reason)
  VALUES (-nextval('events_pending_seq'), now(),
          CASE WHEN left(TG_ARGV[0], 1) = '=' THEN
            coalesce(TG_ARGV[8]::jsonb->>(r->>substr(TG_ARGV[0], 2)), r->>substr(TG_ARGV[0], 2))
          ELSE TG_ARGV[0] END,
          act, r->>TG_ARGV[1], r->>TG_ARGV[2], r->>NULLIF(TG_ARGV[3], ''),
          r->>NULLIF(TG_ARGV[4], ''), r->>NULLIF(TG_ARGV[5], ''), r->>NULLIF(TG_ARGV[6], ''));
  RETURN NULL;
END $$""",
    f"""CREATE FUNCTION bayport_sequence_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock({SEQUENCE_LOCK});
  UPDATE events SET id = nextval('events_id_seq'), at = clock_timestamp() WHERE id = NEW.id;
  PERFORM pg_notify('{CHANNEL}', '');
  RETURN NULL;
END $$""",
    "CREATE CONSTRAINT TRIGGER events_sequence AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE PROCEDURE bayport_sequence_event()",
]
PG_DROP_FUNCTIONS = [
    "DROP TRIGGER IF EXISTS events_sequence ON events",
    "DROP FUNCTION IF EXISTS bayport_sequence_event()",
    "DROP FUNCTION IF EXISTS bayport_record_event()",
    "DROP SEQUENCE IF EXISTS events_pending_seq",
]


def pg_trigger_ddl(src: EventSource) -> list[str]:
    t = src.table
    args = ", ".join([*(f"'{c or ''}'" for c in src.columns()), f"'{src.kind_map_json()}'"])
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in src.watched)
    run = f"FOR EACH ROW EXECUTE PROCEDURE bayport_record_event({args})"
    return [f"CREATE TRIGGER {t}_event_write AFTER INSERT OR DELETE ON {t} {run}",
            f"CREATE TRIGGER {t}_event_update AFTER UPDATE ON {t} FOR EACH ROW WHEN ({changed}) "
            f"EXECUTE PROCEDURE bayport_record_event({args})"]


def drop_trigger_ddl(src: EventSource, dialect: str) -> list[str]:
    t = src.table
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {t}_event_{op}" for op in ("insert", "update", "delete")]
    return [f"DROP TRIGGER IF EXISTS {t}_event_{op} ON {t}" for op in ("write", "update")]


# -- reading and pruning ---------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """Which events a reader may and wants to see; None means no restriction."""

    project_id: str | None = None
    kinds: frozenset[str] | None = None
    bay_uuid: str | None = None

    def admits(self, event: Event) -> bool:
        return ((self.project_id is None or event.project_id == self.project_id)
                and (self.kinds is None or event.kind in self.kinds)
                and (self.bay_uuid is None or event.bay_uuid == self.bay_uuid))


async def read_after(session: AsyncSession, cursor: int, scope: Scope = Scope(),
                     limit: int = 1000) -> list[Event]:
    """Committed events with ``id > cursor`` that ``scope`` admits, oldest first."""
    stmt = select(EventRow.__table__).where(EventRow.id > cursor)
    if scope.project_id is not None:
        stmt = stmt.where(EventRow.project_id == scope.project_id)
    if scope.kinds is not None:
        stmt = stmt.where(EventRow.kind.in_(sorted(scope.kinds)))
    if scope.bay_uuid is not None:
        stmt = stmt.where(EventRow.bay_uuid == scope.bay_uuid)
    rows = (await session.execute(stmt.order_by(EventRow.id).limit(limit))).all()
    return [_event(r) for r in rows]


async def last_id(session: AsyncSession) -> int:
    """The newest event's id, or the horizon when retention emptied the log (0 when new)."""
    newest = (await session.execute(select(func.max(EventRow.id)))).scalar()
    return max(int(newest or 0), await horizon(session))


async def horizon(session: AsyncSession) -> int:
    value = (await session.execute(
        select(EventHorizonRow.pruned_through).where(EventHorizonRow.id == 1))).scalar()
    return int(value or 0)


async def prune(session: AsyncSession, *, keep: timedelta, keep_rows: int) -> int:
    """Delete events older than ``keep`` or beyond the newest ``keep_rows``; returns the new
    horizon. Idempotent, so every API worker may run it."""
    old = (await session.execute(
        select(func.max(EventRow.id)).where(EventRow.at < utcnow() - keep))).scalar()
    newest = (await session.execute(select(func.max(EventRow.id)))).scalar()
    through = max(int(old or 0), int(newest or 0) - keep_rows)
    current = await horizon(session)
    if through <= current:
        return current
    await session.execute(sa_delete(EventRow).where(EventRow.id <= through, EventRow.id > 0))
    await session.execute(update(EventHorizonRow).where(EventHorizonRow.id == 1,
                                                        EventHorizonRow.pruned_through < through)
                          .values(pruned_through=through))
    await session.commit()
    return through
