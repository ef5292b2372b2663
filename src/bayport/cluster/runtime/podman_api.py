"""podman's libpod REST API on a private unix socket, for the calls a pod start makes. OFF by
default (``BAYPORT_PODMAN_API=1`` turns it on): measured, it is not yet safe.

Why try it: every ``podman`` CLI process costs 0.05-0.08 s of CPU before it does anything (Go
runtime, config, opening the database), and a pod start is three of them. 20 pods (pod create +
create + start, one after another, 2 cores) through ``podman system service`` took 0.086 s of
host CPU per pod against 0.184 s by CLI, in half the time; a 50-pod burst is CPU-bound, so that
is the difference that would count. kubelet talks to its runtime the same way, over one socket.

Why it is off: in bench_podman's 50-pod burst (podman 4.3.1, CLI ``podman create`` running beside
the service's pod creates and starts) 40 pods started with a median of 5.8 s — against 9.1 s by
CLI in the same run — but 10 requests never got an answer and their pods stayed
ContainerCreating. Until that is understood (lock contention between the service and CLI
processes is the first suspect: moving ``podman create`` to the API too, via libpod's
SpecGenerator, would remove the mix), the runtime uses the CLI (``podman_cli``).

What goes over the API when enabled: ``pod create`` and ``start``, fixed-shape requests. If the
service cannot be started or a request fails to connect or times out, the caller falls back to
the CLI (``Unavailable``). One service per process, started on first use with an idle timeout
(``IDLE_SECONDS``), so it exits by itself and nothing has to stop it; a request that finds it gone
starts it again. Containers it starts belong to their conmon, not to the service: a service
exit, like a ``bayport serve`` restart, leaves them running for adoption.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bayport.cluster.runtime.podman_cli import PODMAN, CommandError

API = "/v4.0.0/libpod"
IDLE_SECONDS = 60
START_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0


class Unavailable(Exception):
    """The service could not be started or reached: use the CLI instead."""


class LibpodService:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed_at: float | None = None

    @property
    def socket(self) -> Path | None:
        return self._dir / "libpod.sock" if self._dir is not None else None

    def _running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def _ensure(self) -> Path:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:           # an asyncio lock serves one event loop only
            self._loop, self._lock = loop, asyncio.Lock()
        if not self._running():
            assert self._lock is not None
            async with self._lock:
                if not self._running():
                    if self._failed_at is not None and time.monotonic() - self._failed_at < 30:
                        raise Unavailable("podman system service failed to start just now")
                    try:
                        await asyncio.to_thread(self._start)
                    except (OSError, TimeoutError) as exc:
                        self._failed_at = time.monotonic()
                        raise Unavailable(f"podman system service: {exc}") from exc
        assert self.socket is not None
        return self.socket

    def _start(self) -> None:
        """Blocking: spawn the service (subprocess closes every other descriptor, whatever the
        event loop; see ``podman_cli``) and wait for its socket."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="bayport-libpod-"))
            atexit.register(self._stop)
        sock = self.socket
        assert sock is not None
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        self._proc = subprocess.Popen([PODMAN, "system", "service", "--time", str(IDLE_SECONDS),
                                       f"unix://{sock}"], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      close_fds=True, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not sock.exists():
            if self._proc.poll() is not None:
                raise OSError(f"exited with code {self._proc.returncode}")
            if time.monotonic() > deadline:
                self._proc.kill()
                raise TimeoutError(f"no socket after {START_TIMEOUT:g} s")
            time.sleep(0.02)

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The decoded answer; CommandError (with libpod's message) for an error status,
        Unavailable when the service cannot be reached even after a restart."""
        for attempt in range(2):
            sock = await self._ensure()
            try:
                status, content = await asyncio.wait_for(_exchange(sock, method, API + path, body),
                                                         REQUEST_TIMEOUT)
            except TimeoutError as exc:      # no answer: let the CLI try (start is idempotent)
                raise Unavailable(f"podman system service: no answer to {method} {path}") from exc
            except (OSError, EOFError, ValueError) as exc:
                if attempt == 0:
                    await asyncio.to_thread(self._reap)     # idle timeout just hit: start it again
                    continue
                raise Unavailable(f"podman system service: {exc!r}") from exc
            if status >= 400:
                try:
                    message = str(json.loads(content).get("message") or content.decode(errors="replace"))
                except (ValueError, AttributeError):
                    message = content.decode(errors="replace")
                raise CommandError([PODMAN, "system", "service", method, path], status, f"Error: {message}")
            if status in (204, 304) or not content.strip():
                return None
            return json.loads(content)
        raise Unavailable("podman system service keeps going away")

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(2)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()


async def _exchange(sock: Path, method: str, path: str, body: Mapping[str, Any] | None) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a fresh connection (connecting a unix socket costs nothing, and no
    connection outlives the event loop that made it); (status, body)."""
    payload = json.dumps(body).encode() if body is not None else b""
    reader, writer = await asyncio.open_unix_connection(str(sock))
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: libpod\r\nConnection: close\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                     + payload)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, sep, content = raw.partition(b"\r\n\r\n")
    if not sep:
        raise EOFError("podman system service closed the connection without an answer")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        content = _unchunk(content)
    return status, content


def _unchunk(data: bytes) -> bytes:
    out, offset = bytearray(), 0
    while True:
        end = data.index(b"\r\n", offset)
        size = int(data[offset:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        offset = end + 2 + size + 2


_service = LibpodService()


def enabled() -> bool:
    return os.environ.get("BAYPORT_PODMAN_API", "0") == "1"


async def pod_create(name: str, labels: Mapping[str, str]) -> str:
    """``podman pod create --infra=false --name <name> --label ...``; the pod's id."""
    found = await _service.request("POST", "/pods/create",
                                   {"name": name, "no_infra": True, "labels": dict(labels)})
    return str((found or {}).get("Id", name))


async def start(container_id: str) -> None:
    """``podman start <id>`` (already running is success, as for the CLI)."""
    await _service.request("POST", f"/containers/{container_id}/start")
