"""Running ``podman``, ``ip`` and CNI plugins for the event loop.

The podman runtime (``runtime.podman``) talks to podman only through its CLI with
``--format json``: nothing to keep running besides the one ``podman events`` process per node
(``podman_events``), and every call is a short-lived process whose failure text is the error we
show. ``run`` bounds each command in time; a caller cancelled mid-command (its pod was deleted)
does not kill podman half-way through an operation — the process is left to finish, and the
sandbox clean-up removes whatever it made.

Short commands are spawned by ``subprocess`` on a thread of their own, not by the event loop:
uvloop's ``subprocess_exec`` ignores ``close_fds``, so every child inherits the loop's own ends
of its stdio socketpairs at other descriptor numbers. ``podman init``/``start`` leave ``conmon``
running as a daemon, which then holds the write end of our stdout for the container's whole
life: ``communicate`` never sees EOF and the pod hangs in ContainerCreating under ``bayport
serve`` (uvloop) while the same code passes on asyncio's loop. ``subprocess`` closes every
descriptor above 2 in the child, whatever loop is running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

PODMAN = "podman"
DEFAULT_TIMEOUT = 120.0


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


# One thread per command in flight; podman serialises on its own locks, so callers bound their
# own parallelism (``PARALLEL_COMMANDS``) and this only has to be large enough never to queue them.
_COMMANDS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="runtime-cmd")


def _run_blocking(argv: Sequence[str], stdin: bytes | None, env: Mapping[str, str] | None,
                  timeout: float | None) -> tuple[int | None, bytes, bytes]:
    """(returncode, stdout, stderr); returncode None when ``timeout`` passed and it was killed."""
    with subprocess.Popen(list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
                          env=dict(env) if env is not None else None) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None, b"", b""
    return proc.returncode, out, err


async def run(argv: Sequence[str], *, stdin: bytes | None = None, env: Mapping[str, str] | None = None,
              timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """stdout of ``argv``; CommandError on a non-zero exit or after ``timeout`` seconds.
    Cancelling the caller does not stop the command: it runs to its end on its thread."""
    loop = asyncio.get_running_loop()
    try:
        code, out, err = await loop.run_in_executor(_COMMANDS, _run_blocking, argv, stdin, env, timeout)
    except FileNotFoundError as exc:
        raise CommandError(argv, None, f"{argv[0]}: command not found") from exc
    if code is None:
        raise CommandError(argv, None, f"timed out after {timeout:g}s")
    if code != 0:
        raise CommandError(argv, code, err.decode(errors="replace"), out)
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
