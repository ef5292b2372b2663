"""``--wait`` on the event stream: the CLI follows ``GET /v1/events`` instead of polling.

The stream is opened first, then the object is read once (so a change between the two is not
missed); after that each event about it carries its new status (so a status that lasted a
moment is still shown), and the object is read again only once it has settled or after a
``reset``. If the stream cannot be had (an older server, a proxy
that buffers, the connection breaking), the wait carries on by polling, as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from bayport.cli.client import Client, die

# Given the event about the object (None: read it afresh), (settled?, what to return).
Check = Callable[[dict[str, Any] | None], tuple[bool, Any]]
# Longer than a few of the server's heartbeats (15 s by default): silence this long is a
# broken stream, and the wait goes on by polling.
READ_TIMEOUT = 60.0


class _Unavailable(Exception):
    pass


def _frames(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event name, data) of each dispatched frame; comments (heartbeats) are skipped."""
    name, data = "message", ""
    for line in lines:
        if not line:
            if data or name != "message":
                yield name, data
            name, data = "message", ""
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def wait_on_events(client: Client, params: dict[str, str], uuid: str, check: Check, *,
                   timeout: float, poll: float) -> Any:
    """Run ``check`` until it says settled: on each event about ``uuid``, else every ``poll``
    seconds when the stream is unavailable. Gives up (exit 1) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    try:
        with client.http.stream("GET", "/v1/events", params=params,
                                timeout=httpx.Timeout(10.0, read=READ_TIMEOUT)) as resp:
            if resp.status_code != 200:
                raise _Unavailable
            done, result = check(None)
            if done:
                return result
            for name, data in _frames(resp.iter_lines()):
                if name == "close" or time.monotonic() > deadline:
                    break
                event = _about(data, uuid) if name == "message" else None
                if name == "reset" or event is not None:
                    done, result = check(event)
                    if done:
                        return result
    except (httpx.HTTPError, _Unavailable):
        pass
    while time.monotonic() < deadline:
        done, result = check(None)
        if done:
            return result
        time.sleep(poll)
    die(f"gave up waiting after {timeout:.0f} s")


def _about(data: str, uuid: str) -> dict[str, Any] | None:
    try:
        event = json.loads(data)
    except ValueError:
        return None
    return event if isinstance(event, dict) and event.get("uuid") == uuid else None
