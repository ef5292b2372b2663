"""POST /v1/tokens (admin): issue a token for a project, user and role.

The clear token is in this one response only; the database keeps its SHA-256.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bayport.api.deps import AdminDep, SessionDep
from bayport.api.schemas import TokenCreate
from bayport.db.tokens import issue_token

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


@router.post("", status_code=201, summary="Issue an API token (admin)")
async def create_token(body: TokenCreate, ctx: AdminDep, session: SessionDep) -> dict[str, Any]:
    token = await issue_token(session, project=body.project, user=body.user, role=body.role,
                              description=body.description)
    await session.commit()
    return {"token": token, "project": body.project, "user": body.user, "role": body.role}
