"""The product as it ships: ``bayport serve`` (the installed console script) as a subprocess,
driven only through its public interfaces — HTTP, the ``bayport`` CLI, kubectl.

``Served`` owns one server process and its data dir; ``restart`` stops it (SIGTERM or SIGKILL)
and starts a new one on the same settings, which is what a user's restart is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

BIN = Path(sys.executable).parent
BAYPORT = str(BIN / "bayport")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    """One ``bayport serve`` process; ``env`` is what both it and client commands see."""

    data_dir: Path
    env: dict[str, str]
    url: str
    proc: subprocess.Popen[bytes] | None = None
    _log: BinaryIO | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-serve-{self.starts}.log"

    def log_text(self) -> str:
        logs = sorted(self.data_dir.parent.glob(f"{self.data_dir.name}-serve-*.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)

    async def start(self, timeout: float = 60.0) -> None:
        self.starts += 1
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([BAYPORT, "serve"], env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as c:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"bayport serve exited {self.proc.returncode}:\n{self.log_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get(f"{self.url}/")).status_code < 500:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"bayport serve did not answer in {timeout}s:\n{self.log_text()}")
                await asyncio.sleep(0.1)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> float:
        """Signal the server and wait for it to exit; the seconds it took."""
        assert self.proc is not None
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.to_thread(self.proc.wait, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
                raise AssertionError(f"bayport serve ignored signal {sig} for {timeout}s") from None
        if self._log is not None:
            self._log.close()
        return time.monotonic() - began

    async def restart(self, sig: int = signal.SIGTERM) -> None:
        await self.stop(sig)
        await self.start()

    async def run(self, program: str, *args: str, timeout: float = 120.0) -> tuple[int, str, str]:
        """``program <args>`` in the server's environment: (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            program, *args, env={"BAYPORT_TOKEN": self.token, **self.env, "COLUMNS": "250"},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return int(proc.returncode or 0), out.decode(), err.decode()

    async def cli(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        """``bayport <args>`` as a user runs it; its stdout (AssertionError on a non-zero exit)."""
        code, out, err = await self.run(BAYPORT, *args, timeout=timeout)
        if check and code != 0:
            raise AssertionError(f"bayport {' '.join(args)} exited {code}:\n{out}{err}")
        return out

    async def shell(self, command: str, *, cwd: Path, timeout: float = 180.0) -> tuple[int, str, str]:
        """``command`` run by bash in ``cwd`` as a user types it into a shell that has only the
        server's settings (BAYPORT_DATA_DIR, BAYPORT_BIND): no BAYPORT_URL, no BAYPORT_TOKEN.
        (exit status, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            "bash", "-e", "-o", "pipefail", "-c", command, cwd=cwd, env={**self.env, "COLUMNS": "250"},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode or 0, out.decode(), err.decode()

    async def cli_json(self, *args: str) -> Any:
        return json.loads(await self.cli(*args, "--format", "json"))

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"X-Auth-Token": self.token}, timeout=30)


@contextlib.asynccontextmanager
async def served(data_dir: Path, **settings: str) -> AsyncIterator[Served]:
    """A started ``bayport serve`` on a free port and its own data dir; stopped at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAYPORT_")}
    # No BAYPORT_URL: client commands find the server from BAYPORT_BIND, as a user's shell does.
    env.update({"BAYPORT_DATA_DIR": str(data_dir), "BAYPORT_BIND": f"127.0.0.1:{port}",
                "PATH": f"{BIN}:{env.get('PATH', '')}"})
    env.update({f"BAYPORT_{k.upper()}": v for k, v in settings.items()})
    server = Served(data_dir=data_dir, env=env, url=f"http://127.0.0.1:{port}")
    await server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            await server.stop(signal.SIGTERM, timeout=30)
            if server.proc.poll() is None:
                os.killpg(server.proc.pid, signal.SIGKILL)
