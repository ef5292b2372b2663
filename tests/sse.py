"""Reading a Server-Sent Events stream over real HTTP (httpx streaming), for the tests of
GET /v1/events: frames as dicts, comments counted, with a bound on every wait."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Frame:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


async def frames(resp: httpx.Response) -> AsyncIterator[Frame]:
    """Every dispatched frame of ``resp``, comment-only frames included (as event "comment")."""
    frame = Frame()
    async for line in resp.aiter_lines():
        if line == "":
            if frame.data or frame.id is not None or frame.event != "message":
                yield frame
            elif frame.comments:
                yield Frame(event="comment", comments=frame.comments)
            frame = Frame()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "":
            frame.comments.append(value)
        elif name == "data":
            frame.data = f"{frame.data}\n{value}" if frame.data else value
        elif name in ("id", "event"):
            setattr(frame, name, value)


async def until(stream: AsyncIterator[Frame], done: Callable[[Frame], bool], *,
                timeout: float = 30.0) -> list[Frame]:
    """Frames read until one satisfies ``done`` (included); AssertionError after ``timeout``."""
    seen: list[Frame] = []

    async def read() -> None:
        async for frame in stream:
            seen.append(frame)
            if done(frame):
                return
        raise AssertionError(f"the stream ended; it had sent {[f.data or f.event for f in seen]}")

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(f"nothing matched within {timeout}s; got "
                             f"{[f.data or f.event for f in seen]}") from None
    return seen


def objects(seen: list[Frame]) -> list[dict[str, Any]]:
    return [f.json for f in seen if f.event == "message"]
