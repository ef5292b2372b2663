"""Query helpers shared by every resource: project scoping, lookup by uuid-or-name,
and keyset pagination (``limit``/``marker``/``sort_key``/``sort_dir``) as Magnum's API does it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bayport import errors

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_LIMIT = 1000


def is_uuid(value: str) -> bool:
    return bool(UUID_RE.match(value))


async def get_by_ident(session: AsyncSession, stmt: Select[Any], model: Any, ident: str,
                       *, kind: str) -> Any:
    """One row by uuid, or by name when unique; 404 when absent, 409 when the name is ambiguous.

    ``stmt`` is already scoped to what the caller may see, so another project's row is a 404.
    """
    if is_uuid(ident):
        row = (await session.execute(stmt.where(model.uuid == ident.lower()))).scalar_one_or_none()
        if row is not None:
            return row
    rows = (await session.execute(stmt.where(model.name == ident).limit(2))).scalars().all()
    if not rows:
        raise errors.NotFound(f"{kind} {ident} could not be found", field="ident")
    if len(rows) > 1:
        raise errors.AmbiguousName(
            f"more than one {kind} is named {ident!r}; use its uuid", field="name")
    return rows[0]


async def paginate(session: AsyncSession, stmt: Select[Any], model: Any, *, limit: int | None,
                   marker: str | None, sort_key: str, sort_dir: str,
                   allowed_sort_keys: set[str]) -> list[Any]:
    """Keyset pagination: rows after ``marker`` (a uuid) in (sort_key, uuid) order."""
    if sort_key not in allowed_sort_keys:
        raise errors.InvalidInput(
            f"sort_key {sort_key!r} is not one of {sorted(allowed_sort_keys)}", field="sort_key")
    if sort_dir not in ("asc", "desc"):
        raise errors.InvalidInput("sort_dir must be 'asc' or 'desc'", field="sort_dir")
    if limit is not None and limit < 1:
        raise errors.InvalidInput("limit must be a positive integer", field="limit")
    column: InstrumentedAttribute[Any] = getattr(model, sort_key)
    uuid_col: InstrumentedAttribute[Any] = model.uuid
    if marker:
        found = (await session.execute(stmt.where(uuid_col == marker))).first()
        marker_row = found[0] if found is not None and _selects_entity(stmt, model) else found
        if marker_row is None:
            raise errors.InvalidInput(f"marker {marker} is not a visible object", field="marker")
        value = getattr(marker_row, sort_key)
        if value is None:
            after = and_(column.is_(None), uuid_col > marker) if sort_dir == "asc" else or_(
                column.is_not(None), and_(column.is_(None), uuid_col < marker))
        elif sort_dir == "asc":
            after = or_(column > value, and_(column == value, uuid_col > marker), column.is_(None))
        else:
            after = or_(column < value, and_(column == value, uuid_col < marker))
        stmt = stmt.where(after)
    order = (column.asc(), uuid_col.asc()) if sort_dir == "asc" else (column.desc(), uuid_col.desc())
    stmt = stmt.order_by(*order).limit(min(limit or MAX_LIMIT, MAX_LIMIT))
    result = await session.execute(stmt)
    # A select of the mapped class gives objects; a select of its columns gives light rows
    # (no identity map, no instrumentation), which is what list endpoints want.
    if _selects_entity(stmt, model):
        return list(result.scalars().all())
    return list(result.all())


def _selects_entity(stmt: Select[Any], model: Any) -> bool:
    descriptions = stmt.column_descriptions
    return len(descriptions) == 1 and descriptions[0].get("type") is model


def columns(model: Any) -> Select[Any]:
    """``select`` of every column of ``model``: rows with attribute access, no ORM objects."""
    return select(*model.__table__.c)


def scoped(stmt: Select[Any], model: Any, project_id: str | None) -> Select[Any]:
    """Restrict to one project; ``None`` means every project (admin with all_projects)."""
    if project_id is None:
        return stmt
    return stmt.where(model.project_id == project_id)


def select_all(model: type[Any]) -> Select[Any]:
    return select(model)
