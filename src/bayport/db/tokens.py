"""API tokens: issue, verify, bootstrap the admin. Only SHA-256 digests are stored."""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.db.base import utcnow
from bayport.db.models import Project, Token
from bayport.objects.context import ROLES

TOKEN_PREFIX = "bpt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def ensure_project(session: AsyncSession, project_id: str) -> None:
    if await session.get(Project, project_id) is None:
        session.add(Project(id=project_id, name=project_id))
        await session.flush()


async def issue_token(session: AsyncSession, *, project: str, user: str, role: str,
                      description: str | None = None, expires_at: datetime | None = None) -> str:
    """Create a token and return it in clear: the only moment it exists outside the client."""
    if role not in ROLES:
        raise errors.InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    await ensure_project(session, project)
    token = generate_token()
    session.add(Token(token_hash=hash_token(token), project_id=project, user_id=user, role=role,
                      description=description, expires_at=expires_at))
    await session.flush()
    return token


async def lookup_token(session: AsyncSession, token: str) -> Token | None:
    row = (await session.execute(
        select(Token).where(Token.token_hash == hash_token(token)))).scalar_one_or_none()
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    return row


async def bootstrap_admin(session: AsyncSession, token_file: Path) -> tuple[str, bool]:
    """The admin token of this installation: read from ``token_file`` if it still works,
    else issued now and written there with mode 0600. Returns (token, newly_created).
    """
    if token_file.exists():
        existing = token_file.read_text().strip()
        row = await lookup_token(session, existing) if existing else None
        if row is not None and row.role == "admin":
            return existing, False
    token = await issue_token(session, project="admin", user="admin", role="admin",
                              description="bootstrap admin token")
    await session.commit()
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(token_file, 0o600)
    return token, True
