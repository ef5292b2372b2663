"""``--wait`` on the event stream: the CLI follows ``GET /v1/events`` instead of polling.

The stream is opened first, then the object is read once (so a change between the two is not
missed), and it is read again only when an event about it (or a ``reset``) arrives, so a wait
costs one request per status change. If the stream cannot be had (an older server, a proxy
that buffers, the connection breaking), the wait carries on by polling, as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from bayport.cli.client import Client, die

Check = Callable[[], tuple[bool, Any]]   # (settled?, what to return)
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
            done, result = check()
            if done:
                return result
            for name, data in _frames(resp.iter_lines()):
                if name == "close" or time.monotonic() > deadline:
                    break
                if name == "reset" or (name == "message" and _about(data, uuid)):
                    done, result = check()
                    if done:
                        return result
    except (httpx.HTTPError, _Unavailable):
        pass
    while time.monotonic() < deadline:
        done, result = check()
        if done:
            return result
        time.sleep(poll)
    die(f"gave up waiting after {timeout:.0f} s")


def _about(data: str, uuid: str) -> bool:
    try:
        return bool(json.loads(data).get("uuid") == uuid)
    except (ValueError, AttributeError):
        return False
