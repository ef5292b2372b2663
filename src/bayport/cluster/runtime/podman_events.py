"""Container exits as podman reports them: one long-lived ``podman events`` process per node.

``ExitWatcher`` runs ``podman events --format json --filter label=bayport.node=<key>
--filter event=died --since <t>`` and hands each (container id, exit code, time) to the
runtime (``runtime.podman``), which turns it into a ``ContainerExit`` for the node agent. Nothing
polls: the process blocks until podman writes an event. ``--since`` replays what happened
between ``start`` and the process being ready, and after an unexpected end (podman upgraded,
events file rotated) the watcher restarts from the last event it saw; the runtime drops the
duplicates that replay may bring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from calendar import timegm
from collections.abc import Callable

from bayport.cluster.runtime.podman_cli import PODMAN

log = logging.getLogger(__name__)

RESTART_DELAY = 0.5
_STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")

DiedListener = Callable[[str, int, float], None]


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 stamp with up to nanoseconds; None for podman's zero time."""
    if not text:
        return None
    match = _STAMP.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if year <= 1:
        return None
    value = float(timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    if match.group(7):
        value += float("0." + match.group(7))
    zone = match.group(8)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "+" else 1
        digits = zone[1:].replace(":", "")
        value += sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return value


class ExitWatcher:
    def __init__(self, node_label: str, on_died: DiedListener) -> None:
        self.node_label = node_label
        self.on_died = on_died
        self._since = time.time()
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._closing = False

    def start(self, since: float | None = None) -> None:
        if since is not None:
            self._since = since
        self._task = asyncio.create_task(self._run(), name=f"podman-events-{self.node_label}")

    async def close(self) -> None:
        self._closing = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if proc is not None and proc.returncode is None:
            await proc.wait()

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("podman events for %s failed", self.node_label)
            if not self._closing:
                await asyncio.sleep(RESTART_DELAY)

    async def _follow(self) -> None:
        argv = [PODMAN, "events", "--format", "json", "--filter", f"label=bayport.node={self.node_label}",
                "--filter", "event=died", "--since", f"{self._since:.6f}"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, limit=1 << 20)
        self._proc = proc
        try:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                self._handle(line)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self._proc = None

    def _handle(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        if not isinstance(event, dict) or event.get("Status") != "died" or not event.get("ID"):
            return
        when = parse_time(event.get("Time")) or time.time()
        self._since = max(self._since, when)
        try:
            code = int(event.get("ContainerExitCode") or 0)
        except (TypeError, ValueError):
            code = 0
        self.on_died(str(event["ID"]), code, when)
