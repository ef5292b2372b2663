"""Typed dependencies for the routes: the session, the caller's context, the conductor client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from bayport import errors
from bayport.api.state import ApiState
from bayport.db.tokens import hash_token, lookup_token
from bayport.objects.context import RequestContext
from bayport.rpc import RPCClient


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.bayport
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_context(request: Request, state: StateDep,
                      x_auth_token: Annotated[str | None, Header()] = None) -> RequestContext:
    """Authenticate ``X-Auth-Token``; 401 when it is missing or unknown."""
    if not x_auth_token:
        raise errors.Unauthorized("missing X-Auth-Token header", field="X-Auth-Token")
    ctx = await authenticate(state, x_auth_token)
    if ctx is None:
        raise errors.Unauthorized("the token is not valid", field="X-Auth-Token")
    return ctx.model_copy(update={"request_id": request.state.request_id})


async def authenticate(state: ApiState, token: str) -> RequestContext | None:
    """The caller ``token`` stands for, or None; verified tokens are cached (``TokenCache``).
    Long-lived responses (the event stream) call it again to notice a revoked token."""
    digest = hash_token(token)
    ctx = state.tokens.get(digest)
    if ctx is None:
        async with state.sessionmaker() as session:
            row = await lookup_token(session, token)
        if row is None:
            return None
        ctx = RequestContext(user_id=row.user_id, project_id=row.project_id, roles=[row.role])
        state.tokens.put(digest, ctx)
    return ctx


ContextDep = Annotated[RequestContext, Depends(get_context)]


async def require_writer(ctx: ContextDep) -> RequestContext:
    if not ctx.can_write:
        raise errors.Forbidden("the reader role cannot change anything")
    return ctx


async def require_admin(ctx: ContextDep) -> RequestContext:
    if not ctx.is_admin:
        raise errors.Forbidden("this needs the admin role")
    return ctx


WriterDep = Annotated[RequestContext, Depends(require_writer)]
AdminDep = Annotated[RequestContext, Depends(require_admin)]


async def get_conductor(state: StateDep) -> RPCClient:
    return state.conductor


ConductorDep = Annotated[RPCClient, Depends(get_conductor)]


def visible_project(ctx: RequestContext, all_projects: bool) -> str | None:
    """The project to scope queries to; None (everything) only for admins who ask."""
    if all_projects:
        if not ctx.is_admin:
            raise errors.Forbidden("all_projects needs the admin role", field="all_projects")
        return None
    return ctx.project_id


AllProjectsDep = Annotated[bool, Query(description="admin only: list every project's objects")]
