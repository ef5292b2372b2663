"""The README's Production block, run from the README by bash: ``db upgrade``, a ``conductor`` in
the background and ``bayport api --bind 0.0.0.0:…`` on PostgreSQL and RabbitMQ. Substituted are
only what names the deployment (the database and broker hosts, the port). A client shell on the
same machine, with only BAYPORT_BIND and BAYPORT_DATA_DIR, then makes a bay and runs the
example pod, which is what the block promises."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_production import pg_url, vhost  # noqa: F401 - fixtures used by name
from tests.product.served import BIN, free_port
from tests.product.test_readme_tour import README, REPO, code_blocks, section

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]

README_DB = "postgresql+asyncpg://bayport@db/bayport"
README_BUS = "amqp://guest:guest@rabbit:5672/"
README_BIND = "0.0.0.0:9511"


def production_block() -> str:
    [(_, lines)] = section(README.read_text(), "Production")
    block = "\n".join(code_blocks(lines)[0])
    for literal in (README_DB, README_BUS, README_BIND, "bayport db upgrade", "bayport conductor &",
                    "bayport api"):
        assert literal in block, f"the README's Production block no longer has {literal!r}:\n{block}"
    return block


async def client(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(str(BIN / "bayport"), *args, env=env, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"bayport {' '.join(args)}: {err.decode()}"
    return out.decode()


@pytest.mark.timeout(240)
async def test_readme_production_block_runs_as_written(tmp_path: Path, vhost: str,  # noqa: F811
                                                       pg_url: str) -> None:  # noqa: F811
    port = free_port()
    script = (production_block().replace(README_DB, pg_url)
              .replace(README_BUS, f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
              .replace(README_BIND, f"0.0.0.0:{port}"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("BAYPORT_")}
    base.update({"PATH": f"{BIN}:{base.get('PATH', '')}", "BAYPORT_DATA_DIR": str(tmp_path / "data"),
                 "COLUMNS": "250"})
    log = open(tmp_path / "production.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(["bash", "-e", "-c", script], env=base, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        async with httpx.AsyncClient() as http:
            while True:
                assert proc.poll() is None, (tmp_path / "production.log").read_text()
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/")).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, (tmp_path / "production.log").read_text()
                await asyncio.sleep(0.2)
        assert "admin token written to" in (tmp_path / "production.log").read_text()
        shell = {**base, "BAYPORT_BIND": f"0.0.0.0:{port}"}   # no URL, no token: found from these
        await client(shell, "baymodel-create", "--name", "k8s", "--image-id", "fedora-atomic",
                     "--keypair-id", "default", "--external-network-id", "public",
                     "--labels", "runtime=simulated")
        assert "CREATE_COMPLETE" in await client(shell, "bay-create", "--name", "prod", "--baymodel", "k8s",
                                                 "--wait")
        out = await client(shell, "pod-create", "--manifest", "examples/redis-master.yaml", "--bay", "prod",
                           "--wait")
        assert "Running" in out, out
        await client(shell, "bay-delete", "prod", "--wait")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        # the conductor was started with `&`: it is in the same process group, but bash may be gone
        for _ in range(100):
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
