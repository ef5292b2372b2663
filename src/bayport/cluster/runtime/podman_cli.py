"""Running ``podman``, ``ip`` and CNI plugins from the event loop, as asyncio subprocesses.

The podman runtime (``runtime.podman``) talks to podman only through its CLI with
``--format json``: nothing to keep running besides the one ``podman events`` process per node
(``podman_events``), and every call is a short-lived process whose failure text is the error we
show. ``run`` bounds each command in time; a caller cancelled mid-command (its pod was deleted)
does not kill podman half-way through an operation — the process is left to finish and reaped in
the background, and the sandbox clean-up removes whatever it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

PODMAN = "podman"
DEFAULT_TIMEOUT = 120.0
_background: set[asyncio.Task[Any]] = set()


class CommandError(Exception):
    """A command exited non-zero (or timed out); ``message`` is its cleaned-up stderr."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str, stdout: bytes = b"") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.message = clean_error(stderr) or f"{argv[0]} exited with code {returncode}"
        super().__init__(self.message)

    @property
    def not_found(self) -> bool:
        text = self.message.lower()
        return "no such" in text or "not found" in text or "does not exist" in text or "not known" in text


def clean_error(stderr: str) -> str:
    """The last meaningful line of podman's stderr without its ``Error: `` prefix."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    text = (errors or lines or [""])[-1]
    return text.removeprefix("Error:").strip()


async def _communicate(proc: asyncio.subprocess.Process, stdin: bytes | None) -> tuple[bytes, bytes]:
    return await proc.communicate(stdin)


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)


async def run(argv: Sequence[str], *, stdin: bytes | None = None, env: Mapping[str, str] | None = None,
              timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """stdout of ``argv``; CommandError on a non-zero exit or after ``timeout`` seconds."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None)
    task = asyncio.ensure_future(_communicate(proc, stdin))
    try:
        out, err = await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        _kill(proc)
        await asyncio.gather(task, return_exceptions=True)
        raise CommandError(argv, None, f"timed out after {timeout:g}s") from None
    except asyncio.CancelledError:
        _background.add(task)          # let podman finish what it started; reap it later
        task.add_done_callback(_background.discard)
        raise
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, err.decode(errors="replace"), out)
    return out


async def podman(*args: str, stdin: bytes | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    return await run([PODMAN, *args], stdin=stdin, timeout=timeout)


async def podman_json(*args: str, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
    out = await podman(*args, timeout=timeout)
    text = out.strip()
    return json.loads(text) if text else None


async def podman_id(*args: str, timeout: float | None = DEFAULT_TIMEOUT) -> str:
    """The id podman prints last (create, pod create)."""
    out = (await podman(*args, timeout=timeout)).decode().strip().splitlines()
    if not out:
        raise CommandError([PODMAN, *args], 0, "podman printed no id")
    return out[-1].strip()


def host_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(extra)
    return env
