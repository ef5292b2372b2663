"""The product in production mode, as it ships: ``bayport api``, two ``bayport conductor
--external-netd`` and one ``bayport netd`` (the installed console scripts) as subprocesses on
PostgreSQL and RabbitMQ, driven only through HTTP, the ``bayport`` CLI and kubectl.

``Production`` owns the processes and their logs; each can be started, SIGKILLed and started
again by name, which is what a crash and a supervisor's restart are. ``BrokerLink`` is a TCP
hop between one process and RabbitMQ whose client-to-broker direction the test can hold
and then cut: the process keeps receiving and working while its acks and replies never
arrive, and the cut makes the broker hand every unacked message out again. That is a
RabbitMQ restart (or a network partition) at the worst moment, on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from tests.product.served import BAYPORT, BIN, free_port

RABBIT = ("127.0.0.1", 5672)
PROCESSES = ("api", "conductor-a", "conductor-b", "netd")
COMMANDS = {"api": ["api"], "conductor-a": ["conductor", "--external-netd"],
            "conductor-b": ["conductor", "--external-netd"], "netd": ["netd"]}


class BrokerLink:
    """A TCP proxy to RabbitMQ; ``hold`` stops the client→broker bytes, ``cut`` drops the links."""

    def __init__(self, target: tuple[str, int] = RABBIT) -> None:
        self.target = target
        self.port = 0
        self.holding = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._resumed = asyncio.Event()
        self._resumed.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer, upstream=True),
                             self._pipe(up_reader, writer, upstream=False), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if upstream:
                    await self._resumed.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def hold(self) -> None:
        """From now on nothing the clients send reaches the broker (acks, replies, heartbeats)."""
        self.holding = True
        self._resumed.clear()

    def cut(self) -> None:
        """Drop every link, losing whatever was held; new connections flow freely again."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self.holding = False
        self._resumed.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class Production:
    """api + conductor-a + conductor-b + netd on one database and one vhost."""

    root: Path
    env: dict[str, str]
    url: str
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: dict[str, BinaryIO] = field(default_factory=dict, repr=False)
    starts: dict[str, int] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return (Path(self.env["BAYPORT_DATA_DIR"]) / "admin-token").read_text().strip()

    def log_text(self, name: str | None = None, tail: int = 4000) -> str:
        names = [name] if name else list(PROCESSES)
        parts = []
        for n in names:
            for path in sorted(self.root.glob(f"{n}-*.log")):
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def start(self, name: str) -> None:
        assert name not in self.procs or self.procs[name].poll() is not None, f"{name} is running"
        self.starts[name] = self.starts.get(name, 0) + 1
        log = open(self.root / f"{name}-{self.starts[name]}.log", "wb")  # noqa: SIM115 - closed in kill/stop
        self._logs[name] = log
        env = {**self.env, **self.overrides.get(name, {})}
        self.procs[name] = subprocess.Popen([BAYPORT, *COMMANDS[name]], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    async def kill(self, name: str) -> None:
        """SIGKILL: no shutdown code runs, unacked messages go back to the broker."""
        await self.stop(name, signal.SIGKILL)

    async def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    async def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        await self.stop(name, sig)
        self.start(name)
        if name == "api":
            await self.wait_api()

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    async def wait_api(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as c:
            while True:
                assert self.alive("api"), f"bayport api exited:\n{self.log_text('api')}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get(f"{self.url}/")).status_code < 500:
                        return
                assert time.monotonic() < deadline, f"bayport api did not answer:\n{self.log_text('api')}"
                await asyncio.sleep(0.1)

    async def wait_started(self, name: str, timeout: float = 60.0) -> None:
        """Until the process's current log says it is serving (conductor) or running (netd)."""
        marker = {"netd": "pod-network controller running"}.get(name, "started")
        path = self.root / f"{name}-{self.starts[name]}.log"
        deadline = time.monotonic() + timeout
        while not (path.exists() and marker in path.read_text(errors="replace")):
            assert self.alive(name), f"{name} exited:\n{self.log_text(name)}"
            assert time.monotonic() < deadline, f"{name} did not start:\n{self.log_text(name)}"
            await asyncio.sleep(0.1)

    async def run(self, program: str, *args: str, timeout: float = 120.0,
                  env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            program, *args, env={"BAYPORT_TOKEN": self.token, **self.env, "COLUMNS": "250", **(env or {})},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return int(proc.returncode or 0), out.decode(), err.decode()

    async def cli(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        code, out, err = await self.run(BAYPORT, *args, timeout=timeout)
        if check and code != 0:
            raise AssertionError(f"bayport {' '.join(args)} exited {code}:\n{out}{err}")
        return out

    async def cli_json(self, *args: str) -> Any:
        return json.loads(await self.cli(*args, "--format", "json"))

    async def kubeconfig(self, bay: str) -> Path:
        path = self.root / f"kubeconfig-{bay}"
        path.write_text(await self.cli("bay-config", bay))
        return path

    async def kubectl_json(self, bay: str, *args: str) -> Any:
        config = await self.kubeconfig(bay)
        code, out, err = await self.run(str(BIN / "kubectl"), "--kubeconfig", str(config), *args,
                                        "-o", "json", timeout=60)
        assert code == 0, f"kubectl {' '.join(args)}: {err}"
        return json.loads(out)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"X-Auth-Token": self.token}, timeout=60)

    async def close(self) -> None:
        for name in list(self.procs):
            await self.stop(name, signal.SIGTERM, timeout=20)


@contextlib.asynccontextmanager
async def production(root: Path, database_url: str, vhost: str, *, start: tuple[str, ...] = PROCESSES,
                     overrides: dict[str, dict[str, str]] | None = None, **settings: str
                     ) -> AsyncIterator[Production]:
    """``db upgrade`` and then the processes in ``start``; every process stopped at the end.

    ``overrides`` are per-process settings (e.g. one conductor's BAYPORT_TRANSPORT_URL through a
    ``BrokerLink``); ``settings`` apply to all of them (``heartbeat_interval="0.5"``).
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAYPORT_")}
    env.update({"BAYPORT_DATA_DIR": str(root / "data"), "BAYPORT_DATABASE_URL": database_url,
                "BAYPORT_TRANSPORT_URL": f"amqp://guest:guest@{RABBIT[0]}:{RABBIT[1]}/{vhost}",
                "BAYPORT_URL": f"http://127.0.0.1:{port}", "BAYPORT_BIND": f"127.0.0.1:{port}",
                "BAYPORT_LOG_LEVEL": "INFO", "PATH": f"{BIN}:{env.get('PATH', '')}"})
    env.update({f"BAYPORT_{k.upper()}": v for k, v in settings.items()})
    subprocess.run([BAYPORT, "db", "upgrade"], env=env, check=True, timeout=120, capture_output=True)
    deployment = Production(root=root, env=env, url=f"http://127.0.0.1:{port}",
                            overrides=overrides or {})
    try:
        for name in start:
            deployment.start(name)
        if "api" in start:
            await deployment.wait_api()
        for name in start:
            if name != "api":
                await deployment.wait_started(name)
        yield deployment
    finally:
        await deployment.close()
        # Stopped conductors leave their bays' containers for a next start to adopt (that is the
        # product's shutdown); this deployment has no next start, so its data dir goes and the
        # product's own leftovers command removes what it owned.
        shutil.rmtree(root / "data", ignore_errors=True)
        if os.geteuid() == 0:
            subprocess.run([BAYPORT, "admin", "leftovers", "--remove"], env=env, timeout=120,
                           capture_output=True, check=False)
