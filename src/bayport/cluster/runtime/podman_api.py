"""podman's libpod REST API on a private unix socket, for the calls a pod start makes.

Why (measured, bench_podman and a 20-pod pod create + create + start loop on 2 cores): every
``podman`` CLI process costs 0.05-0.08 s of CPU before it does anything (Go runtime, config,
opening the database), and a podman pod start is three of them. The same 20 pods through
``podman system service`` took 0.086 s of host CPU per pod against 0.184 s by CLI, and half the
time; with 50 pods created at once the node is CPU-bound, so that is the difference that
counts. kubelet talks to its runtime the same way, over one socket.

What goes over the API: ``pod create`` and ``start``, fixed-shape requests. ``podman create``
stays on the CLI (its options come from ``podman_spec``, the CLI's own flags; translating them
into libpod's SpecGenerator would be a second, untested mapping of every pod field), as do the
rare calls (stop, rm, ps, inspect, logs) and ``podman events``. If the service cannot be
started the caller falls back to the CLI (``Unavailable``), so the API is an optimisation,
never a new way to fail.

One service per process, started on first use with an idle timeout (``IDLE_SECONDS``), so it
exits by itself once pods stop starting and nothing has to stop it; a request that finds it
gone starts it again. Containers it starts belong to their conmon, not to the service: a
service exit, like a ``bayport serve`` restart, leaves them running for adoption.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from bayport.cluster.runtime.podman_cli import PODMAN, CommandError

API = "/v4.0.0/libpod"
IDLE_SECONDS = 60
START_TIMEOUT = 10.0
REQUEST_TIMEOUT = 120.0


class Unavailable(Exception):
    """The service could not be started or reached: use the CLI instead."""


class LibpodService:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed_at: float | None = None

    @property
    def socket(self) -> Path | None:
        return self._dir / "libpod.sock" if self._dir is not None else None

    async def _ensure(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:           # a client and a lock serve one event loop only
            self._loop, self._client, self._lock = loop, None, asyncio.Lock()
        if self._client is not None and self._proc is not None and self._proc.poll() is None:
            return self._client
        assert self._lock is not None
        async with self._lock:
            if self._client is not None and self._proc is not None and self._proc.poll() is None:
                return self._client
            if self._failed_at is not None and time.monotonic() - self._failed_at < 30:
                raise Unavailable("podman system service failed to start just now")
            try:
                await asyncio.to_thread(self._start)
            except (OSError, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                raise Unavailable(f"podman system service: {exc}") from exc
            if self._client is not None:
                await self._client.aclose()
            assert self.socket is not None
            self._client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self.socket)),
                                             base_url="http://libpod", timeout=REQUEST_TIMEOUT)
            return self._client

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
            client = await self._ensure()
            try:
                response = await client.request(method, API + path, json=body)
            except httpx.TransportError as exc:
                if attempt == 0 and self._proc is not None:
                    await asyncio.to_thread(self._reap)     # idle timeout just hit: start it again
                    continue
                raise Unavailable(f"podman system service: {exc!r}") from exc
            if response.status_code >= 400:
                try:
                    message = str(response.json().get("message") or response.text)
                except ValueError:
                    message = response.text
                raise CommandError([PODMAN, "system", "service", method, path], response.status_code,
                                   f"Error: {message}")
            if response.status_code in (204, 304) or not response.content:
                return None
            return response.json()
        raise Unavailable("podman system service keeps going away")

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(2)
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()


_service = LibpodService()


def enabled() -> bool:
    return os.environ.get("BAYPORT_PODMAN_API", "1") != "0"


async def pod_create(name: str, labels: Mapping[str, str]) -> str:
    """``podman pod create --infra=false --name <name> --label ...``; the pod's id."""
    found = await _service.request("POST", "/pods/create",
                                   {"name": name, "no_infra": True, "labels": dict(labels)})
    return str((found or {}).get("Id", name))


async def start(container_id: str) -> None:
    """``podman start <id>`` (already running is success, as for the CLI)."""
    await _service.request("POST", f"/containers/{container_id}/start")
