"""The manifests the README ships in ``examples/`` are real workloads: under ``bayport serve`` with a
podman bay, ``redis-master.yaml`` reaches Running and answers a Redis PING on 6379 at its pod IP
from the host, and the RC's replicas do too. (The README tour runs them simulated; this is what
``runtime=podman`` gives the same files.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.cluster.podman_support import require_podman
from tests.product.served import Served, served
from tests.product.test_restart import kubectl_json

pytestmark = [pytest.mark.podman, pytest.mark.root, pytest.mark.slow, pytest.mark.kubectl]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def ping(ip: str, port: int = 6379) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 5)
    try:
        writer.write(b"*1\r\n$4\r\nPING\r\n")  # what redis-cli sends
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


async def answers(ip: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await ping(ip)
            assert reply == b"+PONG\r\n", reply
            return
        except (OSError, TimeoutError) as exc:
            assert time.monotonic() < deadline, f"{ip}:6379 does not answer from the host: {exc!r}"
            await asyncio.sleep(0.3)


async def pod_ips(server: Served) -> dict[str, str]:
    return {p["name"]: p["pod_ip"] for p in await server.cli_json("pod-list", "--bay", "redis")}


@pytest.mark.timeout(240)
async def test_examples_run_as_podman_containers_and_listen_on_6379(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with served(tmp_path / "data") as server:
        await server.cli("baymodel-create", "--name", "pm", "--image-id", "fedora-atomic",
                         "--keypair-id", "default", "--external-network-id", "public",
                         "--labels", "runtime=podman")
        await server.cli("bay-create", "--name", "redis", "--baymodel", "pm", "--node-count", "1", "--wait")
        pod = await server.cli_json("pod-create", "--manifest", str(EXAMPLES / "redis-master.yaml"),
                                    "--bay", "redis", "--wait")
        assert pod["status"] == "Running", pod
        await answers((await pod_ips(server))["redis-master"])

        await server.cli("coe-service-create", "--manifest", str(EXAMPLES / "redis-service.yaml"),
                         "--bay", "redis")
        await server.cli("rc-create", "--manifest", str(EXAMPLES / "redis-rc.yaml"), "--bay", "redis")
        kubeconfig = tmp_path / "redis.kubeconfig"
        await server.cli("bay-config", "redis", "-o", str(kubeconfig))
        deadline = time.monotonic() + 60
        while True:   # the RC's pods are the cluster's, not rows of pod-list: ask kubectl
            pods = (await kubectl_json(kubeconfig, "get", "pods", "-l", "role=replica"))["items"]
            running = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods
                       if p["status"].get("phase") == "Running"}
            if len(running) == 2:
                break
            assert time.monotonic() < deadline, pods
            await asyncio.sleep(0.3)
        ips = {**running, "redis-master": (await pod_ips(server))["redis-master"]}
        assert len(set(ips.values())) == 3, ips
        for name in running:
            await answers(ips[name])
        await server.cli("bay-delete", "redis", "--wait")
