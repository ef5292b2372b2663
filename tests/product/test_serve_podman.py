"""``bayport serve`` as users run it (the console script, on uvloop) with a podman bay: a pod
made with ``bayport pod-create`` runs, and a tenant job copies between its volumes and
succeeds. In-process stacks run on the test's asyncio loop and never saw the uvloop hang."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.cluster.podman_support import IMAGE, require_podman
from tests.product.served import Served, served

pytestmark = [pytest.mark.podman, pytest.mark.root, pytest.mark.slow]

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: main
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo started; sleep 3600"]
"""


async def _podman_bay(server: Served, name: str) -> None:
    await server.cli("baymodel-create", "--name", f"{name}-model", "--image-id", "fedora-atomic",
                     "--keypair-id", "default", "--external-network-id", "public",
                     "--labels", "runtime=podman")
    await server.cli("bay-create", "--name", name, "--baymodel", f"{name}-model", "--node-count", "1",
                     "--wait")


async def wait_pods_running(server: Served, bay: str, names: set[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        rows = {p["name"]: p["status"] for p in await server.cli_json("pod-list", "--bay", bay)}
        if all(rows.get(n) == "Running" for n in names):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"pods not Running after {timeout}s: {rows}\n{server.log_text()[-3000:]}")
        await asyncio.sleep(0.3)


@pytest.mark.timeout(240)
async def test_podman_pod_and_job_run_under_the_shipped_server(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with served(tmp_path / "data") as server:
        await _podman_bay(server, "pb")
        manifest = tmp_path / "pod.yaml"
        manifest.write_text(POD.format(name="web", image=IMAGE))
        await server.cli("pod-create", "--manifest", str(manifest), "--bay", "pb")
        await wait_pods_running(server, "pb", {"web"}, timeout=60)

        tenant = (await server.cli_json("tenant-create", "--name", "acme", "--bay", "pb"))["id"]
        for vol in ("src", "dest"):
            await server.cli("volume-create", "--tenant", tenant, "--name", vol)
        job = await server.cli_json("job-submit", "--tenant", tenant, "--cmd",
                                    "echo hello > /src/f && cp /src/f /dest/f && cat /dest/f",
                                    "--vol", "src:/src", "--vol", "dest:/dest", "--wait")
        assert job["status"] == "Succeeded", job
        await server.cli("pod-delete", "web", "--bay", "pb")
        await server.cli("bay-delete", "pb", "--wait")


HTTPD = """apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: httpd
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo {bay} > /www/index.html && httpd -f -p 8080 -h /www"]
"""


async def _fetch(ip: str) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, 8080), 5)
    writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
    body = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return body.decode(errors="replace").rsplit("\r\n\r\n", 1)[-1].strip()


@pytest.mark.timeout(240)
async def test_two_podman_bays_get_their_own_pod_pools_and_both_answer_the_host(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with served(tmp_path / "data") as server:
        ips = {}
        for bay in ("east", "west"):
            await _podman_bay(server, bay)
            manifest = tmp_path / f"{bay}.yaml"
            manifest.write_text(HTTPD.format(image=IMAGE, bay=bay))
            await server.cli("pod-create", "--manifest", str(manifest), "--bay", bay)
        for bay in ("east", "west"):
            await wait_pods_running(server, bay, {"web"}, timeout=60)
            ips[bay] = (await server.cli_json("pod-list", "--bay", bay))[0]["pod_ip"]
        assert ips["east"] != ips["west"], ips
        for bay, ip in ips.items():
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert await _fetch(ip) == bay
                    break
                except (OSError, TimeoutError, AssertionError):
                    assert time.monotonic() < deadline, f"{bay}'s pod {ip} is not reachable from the host"
                    await asyncio.sleep(0.3)
        for bay in ("east", "west"):
            await server.cli("bay-delete", bay, "--wait")
