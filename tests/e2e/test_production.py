"""Production mode for real: `bayport api` and two `bayport conductor` processes on
PostgreSQL and RabbitMQ. Ten bays are created, one conductor is SIGKILLed mid-way,
and every bay still reaches a terminal status with none left IN_PROGRESS; the bays
the dead conductor hosted are re-hosted and answer again."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.pg import fresh_database
from tests.stack import kube_get

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]
BAYPORT = str(Path(sys.executable).parent / "bayport")
TERMINAL = {"CREATE_COMPLETE", "CREATE_FAILED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rabbit_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this test's own, so concurrent runs never share queues."""
    require(_rabbit_up() and shutil.which("rabbitmqctl") is not None,
            "RabbitMQ (with rabbitmqctl) is not available on 127.0.0.1:5672")
    name = f"bayport-t-{uuid.uuid4().hex[:10]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                   check=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, timeout=60)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


async def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as c:
        while True:
            try:
                if (await c.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{url} did not come up")
            await asyncio.sleep(0.1)


@pytest.mark.timeout(240)
async def test_ten_bays_survive_a_killed_conductor(tmp_path: Path, vhost: str, pg_url: str) -> None:
    port = _free_port()
    env = {**os.environ, "BAYPORT_DATA_DIR": str(tmp_path), "BAYPORT_DATABASE_URL": pg_url,
           "BAYPORT_TRANSPORT_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
           "BAYPORT_BIND": f"127.0.0.1:{port}", "BAYPORT_HEARTBEAT_INTERVAL": "0.5",
           "BAYPORT_LOG_LEVEL": "INFO", "BAYPORT_DEFAULT_RUNTIME": "simulated"}
    subprocess.run([BAYPORT, "db", "upgrade"], env=env, check=True, timeout=120,
                   capture_output=True)
    token = (tmp_path / "admin-token").read_text().strip()
    logs = [open(tmp_path / f"{n}.log", "wb") for n in ("conductor-a", "conductor-b", "api")]  # noqa: SIM115
    procs = [subprocess.Popen([BAYPORT, "conductor"], env=env, stdout=logs[0], stderr=logs[0]),
             subprocess.Popen([BAYPORT, "conductor"], env=env, stdout=logs[1], stderr=logs[1]),
             subprocess.Popen([BAYPORT, "api"], env=env, stdout=logs[2], stderr=logs[2])]
    victim = procs[0]
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_http(f"{url}/")
        await asyncio.sleep(1.0)  # both conductors consuming
        async with httpx.AsyncClient(base_url=url, headers={"X-Auth-Token": token},
                                     timeout=30) as c:
            resp = await c.post("/v1/baymodels", json={"name": "prod"})
            assert resp.status_code == 201, resp.text
            uuids = []
            for i in range(10):
                resp = await c.post("/v1/bays", json={"name": f"bay{i}", "baymodel_id": "prod",
                                                      "node_count": 3})
                assert resp.status_code == 201, resp.text
                uuids.append(resp.json()["uuid"])
                if i == 4:
                    victim.send_signal(signal.SIGKILL)
            deadline = asyncio.get_running_loop().time() + 90
            while True:
                bays = (await c.get("/v1/bays/detail")).json()["bays"]
                statuses = {b["uuid"]: b["status"] for b in bays}
                if all(statuses.get(u) in TERMINAL for u in uuids):
                    break
                assert asyncio.get_running_loop().time() < deadline, statuses
                await asyncio.sleep(0.2)
            assert not [b for b in bays if b["status"].endswith("IN_PROGRESS")]
            assert all(statuses[u] == "CREATE_COMPLETE" for u in uuids), statuses
            # Every bay answers on its API address, including those the dead conductor hosted.
            deadline = asyncio.get_running_loop().time() + 30
            for u in uuids:
                while True:
                    cfg = await c.get(f"/v1/bays/{u}/config")
                    try:
                        kube = await kube_get(cfg.text, "/api/v1/nodes")
                        if kube.status_code == 200:
                            assert len(kube.json()["items"]) == 4
                            break
                    except httpx.HTTPError:
                        pass
                    assert asyncio.get_running_loop().time() < deadline, f"bay {u} unreachable"
                    await asyncio.sleep(0.2)
            # RabbitMQ hands messages round-robin, so the victim had bays: the survivor took
            # over those in flight, re-hosted those it had finished, and the reasons say so.
            bays = (await c.get("/v1/bays/detail")).json()["bays"]
            reasons = [b["status_reason"] or "" for b in bays]
            assert any("taken over" in r or "re-hosted" in r for r in reasons), reasons
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()
