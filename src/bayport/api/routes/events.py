"""GET /v1/events: the project's object changes as Server-Sent Events (api.event_hub).

Each event is ``id: <n>`` + ``data: <json>`` (db.events.Event); reconnecting with
``Last-Event-ID: <n>`` (or ``?since=<n>``) resumes after it, and a cursor older than retention
gets ``event: reset`` with the id to go on from (re-read the objects then). Without a cursor
the stream starts at the present. ``kind=`` (repeated or comma-separated) and ``bay=`` narrow it.
Tenancy as in the list routes: the caller's project, every project for an admin who passes
``all_projects``. Idle streams get a ``: keepalive`` comment every
``events_heartbeat_seconds``; a token that stops being valid (revoked, expired) ends the stream
with ``event: close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette import types as asgi

from bayport import errors
from bayport.api.deps import AllProjectsDep, ContextDep, StateDep, authenticate, visible_project
from bayport.api.event_hub import Reset
from bayport.api.state import ApiState
from bayport.db.events import Event, Scope
from bayport.db.models import BayRow
from bayport.db.repo import get_by_ident, scoped
from bayport.db.tokens import lookup_token
from bayport.metrics import EVENT_STREAMS

router = APIRouter(prefix="/v1/events", tags=["events"])

KINDS = frozenset({"baymodel", "bay", "pod", "service", "rc", "tenant", "job", "port"})
# How soon a client reconnects after the stream broke (SSE ``retry:``), in milliseconds.
RETRY_MS = 2000


class EventStreamResponse(StreamingResponse):
    """A stream that ends as soon as the client leaves. ASGI 2.4 servers (uvicorn) report a
    disconnect only on the next write, which for an idle stream is a heartbeat later; listening
    for ``http.disconnect`` meanwhile frees the subscriber at once (and lets a server stop)."""

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        streaming = asyncio.ensure_future(self.stream_response(send))
        listening = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, listening):
                task.cancel()
            for task in (streaming, listening):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task


def _frame(event: Event) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (event.id, orjson.dumps(event.to_json()))


def _control(name: str, cursor: int | None, **data: object) -> bytes:
    head = b"id: %d\n" % cursor if cursor is not None else b""
    return head + b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))


def _cursor(value: str | None, field: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise errors.InvalidInput(f"{field} must be a non-negative integer event id", field=field)
    return int(value)


def _kinds(values: list[str] | None) -> frozenset[str] | None:
    if not values:
        return None
    kinds = frozenset(k.strip() for v in values for k in v.split(",") if k.strip())
    unknown = sorted(kinds - KINDS)
    if unknown:
        raise errors.InvalidInput(f"kind {', '.join(unknown)} is not one of {sorted(KINDS)}",
                                  field="kind")
    return kinds or None


@router.get("", summary="Follow changes of the project's objects (text/event-stream)",
            response_class=EventStreamResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def follow_events(
        state: StateDep, ctx: ContextDep,
        x_auth_token: Annotated[str, Header()],
        kind: Annotated[list[str] | None, Query(description="bay, pod, service, rc, job, port, "
                                                "tenant, baymodel; repeat or comma-separate")] = None,
        bay: Annotated[str | None, Query(description="only this bay's objects (uuid or name)")] = None,
        since: Annotated[str | None, Query(description="resume after this event id")] = None,
        all_projects: AllProjectsDep = False,
        last_event_id: Annotated[str | None, Header()] = None) -> EventStreamResponse:
    project = visible_project(ctx, all_projects)
    scope = Scope(project_id=project, kinds=_kinds(kind))
    resume = _cursor(last_event_id, "Last-Event-ID")
    if resume is None:
        resume = _cursor(since, "since")
    async with state.sessionmaker() as session:
        if bay is not None:
            stmt = scoped(select(BayRow), BayRow, project)
            row = await get_by_ident(session, stmt, BayRow, bay, kind="bay")
            scope = Scope(project_id=project, kinds=scope.kinds, bay_uuid=row.uuid)
        token = await lookup_token(session, x_auth_token)
    expires = token.expires_at if token is not None else None
    await state.events.start()
    start: int | Reset = await state.events.current() if resume is None else resume
    if isinstance(start, int) and resume is not None:
        start = await state.events.check(start) or start
    return EventStreamResponse(
        _stream(state, scope, start, x_auth_token, expires.timestamp() if expires else None),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(state: ApiState, scope: Scope, start: int | Reset, token: str,
                  expires_at: float | None) -> AsyncIterator[bytes]:
    EVENT_STREAMS.inc()
    try:
        async for chunk in _frames(state, scope, start, token, expires_at):
            yield chunk
    finally:
        EVENT_STREAMS.dec()


async def _frames(state: ApiState, scope: Scope, start: int | Reset, token: str,
                  expires_at: float | None) -> AsyncIterator[bytes]:
    hub = state.events
    heartbeat = state.settings.events_heartbeat_seconds
    yield b"retry: %d\n: bayport events\n\n" % RETRY_MS
    if isinstance(start, Reset):
        yield _control("reset", start.cursor, reason=start.reason)
        start = start.cursor
    cursor = start
    next_beat = time.monotonic() + heartbeat
    while True:
        tick = hub.changed()
        result = await hub.read(cursor, scope)
        if isinstance(result, Reset):
            yield _control("reset", result.cursor, reason=result.reason)
            cursor = result.cursor
            continue
        events, after = result
        for event in events:
            yield _frame(event)
        moved, cursor = after != cursor, after
        if moved and not tick.is_set():
            continue  # a database read that may have more behind it
        now = time.monotonic()
        expired = expires_at is not None and time.time() >= expires_at
        # Checked on a clock of its own, so a stream kept busy by events still notices.
        if now >= next_beat or expired:
            if expired or await authenticate(state, token) is None:
                yield _control("close", None, reason="the token is no longer valid")
                return
            yield b": keepalive\n\n"
            next_beat = now + heartbeat
        wait = next_beat - now
        if expires_at is not None:
            wait = min(wait, max(0.0, expires_at - time.time()))
        if hub.closing.is_set():
            yield _control("close", None, reason="the server is shutting down; reconnect")
            return
        await _either(tick, hub.closing, wait)


async def _either(first: asyncio.Event, second: asyncio.Event, timeout: float) -> None:
    waits = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
